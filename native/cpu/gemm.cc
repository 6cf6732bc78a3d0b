// The packed f32 GEMM engine shared by matmul, matmul_packed and matmul_q (gemm.h): BLIS-style
// blocking, B packed block by block by the caller's packer (or prepacked whole), A into MR-row
// panels, the 6x16 FMA tile kernel, and the epilogue (bias, activation, output dtype). run()
// is a Run: one method per way of walking the blocks.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <tuple>
#include <vector>

#include "../core/activation.h"
#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace ignis::cpu {
namespace gemm {
namespace {

// Block sizes, measured on 1024^3 and 2048^3 f32 (an AVX-512 Xeon: 48 KB L1d, 2 MB L2; earlier
// Zen 3). KC = 1024 beat 512 at both levels (fewer passes over C, and half the K blocks, each a
// pack of B and two joins): the B micro-panels stream from L2, prefetched, the A panels from L1/L2.
constexpr int64_t kKC = 1024;      // K block
constexpr int64_t kKCSmall = 256;  // K block when B is packed panel by panel (small M) or N is narrow
constexpr int64_t kMC = 72;        // M block: the packed A block (MC x KC f32, 288 KB) stays in L2
constexpr int64_t kSmallRows = 256;  // up to this many rows: one row block (few_rows)
constexpr int64_t kNC = 2048;      // N block: the packed B block (KC x NC f32, 8 MB) stays in L3

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// C [mr, nr] (=|+=) t [kMR][kNR]
void store_tile(const float* t, int64_t mr, int64_t nr, float* c, int64_t ldc, bool first) {
  for (int64_t r = 0; r < mr; r++) {
    float* cr = c + r * ldc;
    const float* tr = t + r * kNR;
    if (first) {
      for (int64_t j = 0; j < nr; j++) cr[j] = tr[j];
    } else {
      for (int64_t j = 0; j < nr; j++) cr[j] += tr[j];
    }
  }
}

// C [mr, nr] (=|+=) A panel [kc][kMR] @ B panel [kc][kNR]; B is prefetched pf floats ahead
using Kernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                        int64_t mr, int64_t nr, bool first, int64_t pf);

void kernel_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t mr,
                   int64_t nr, bool first, int64_t) {
  float t[kMR * kNR] = {};
  for (int64_t k = 0; k < kc; k++) {
    const float* ak = a + k * kMR;
    const float* bk = b + k * kNR;
    for (int64_t r = 0; r < kMR; r++) {
      float ar = ak[r];
      for (int64_t j = 0; j < kNR; j++) t[r * kNR + j] += ar * bk[j];
    }
  }
  store_tile(t, mr, nr, c, ldc, first);
}

// How far ahead (floats) the kernel prefetches B by default: one line per k, 64 rows of the
// panel ahead.
constexpr int64_t kPrefetch = 64 * kNR;

#if IGNIS_ARM64
// The tile on NEON: a row of 16 columns is four 4-float vectors, so a 6-row tile holds 24
// accumulators and the k step's 4 B vectors (32 registers in all); each A value multiplies by
// element. Short tiles issue only their rows.
template <int R>
void kernel_neon(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t mr, int64_t nr,
                 bool first, int64_t pf) {
  float32x4_t acc[R][4];
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = vdupq_n_f32(0.f);
  for (int64_t k = 0; k < kc; k++) {
    __builtin_prefetch(b + pf);
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      const float ar = a[r];
      acc[r][0] = vfmaq_n_f32(acc[r][0], b0, ar);
      acc[r][1] = vfmaq_n_f32(acc[r][1], b1, ar);
      acc[r][2] = vfmaq_n_f32(acc[r][2], b2, ar);
      acc[r][3] = vfmaq_n_f32(acc[r][3], b3, ar);
    }
    a += kMR;
    b += kNR;
  }
  // a full tile straight into C; a partial one through t and store_tile
  float t[kMR * kNR];
  const bool full = nr == kNR;
  for (int r = 0; r < R; r++)
    for (int q = 0; q < 4; q++) {
      float* o = (full ? c + r * ldc : t + r * kNR) + 4 * q;
      vst1q_f32(o, full && !first ? vaddq_f32(vld1q_f32(o), acc[r][q]) : acc[r][q]);
    }
  if (!full) store_tile(t, mr, nr, c, ldc, first);
}
#endif

#if IGNIS_X86

// R = mr rows of the tile (1..kMR): short tiles (M % 6, a decode batch) issue only their rows.
template <int R>
IGNIS_AVX2 void kernel_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                            int64_t mr, int64_t nr, bool first, int64_t pf) {
  __m256 acc[R][2];
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  int64_t k = 0;
  if constexpr (R <= 2) {
    // Too few rows to hide the FMA latency: a second set of sums for the odd k.
    __m256 odd[R][2];
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) odd[r][0] = odd[r][1] = _mm256_setzero_ps();
    for (; k + 2 <= kc; k += 2) {
      // B streams from memory here (decode against a packed weight): fetch 4 KB ahead.
      _mm_prefetch(reinterpret_cast<const char*>(b + pf), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + pf + kNR), _MM_HINT_T0);
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      const __m256 b2 = _mm256_loadu_ps(b + kNR), b3 = _mm256_loadu_ps(b + kNR + 8);
      MATMUL_UNROLL
      for (int r = 0; r < R; r++) {
        const __m256 a0 = _mm256_broadcast_ss(a + r), a1 = _mm256_broadcast_ss(a + kMR + r);
        acc[r][0] = _mm256_fmadd_ps(a0, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(a0, b1, acc[r][1]);
        odd[r][0] = _mm256_fmadd_ps(a1, b2, odd[r][0]);
        odd[r][1] = _mm256_fmadd_ps(a1, b3, odd[r][1]);
      }
      a += 2 * kMR;
      b += 2 * kNR;
    }
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      acc[r][0] = _mm256_add_ps(acc[r][0], odd[r][0]);
      acc[r][1] = _mm256_add_ps(acc[r][1], odd[r][1]);
    }
  }
  // unrolled: 2048^3 on two threads ~2% faster at this level (three alternated runs of each build)
#pragma GCC unroll 4
  for (; k < kc; k++) {
    _mm_prefetch(reinterpret_cast<const char*>(b + pf), _MM_HINT_T0);
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {  // C[r, :] += A[r, k] * B[k, :]
      const __m256 av = _mm256_broadcast_ss(a + r);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
    a += kMR;
    b += kNR;
  }
  if (nr == kNR) {
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      float* cr = c + r * ldc;
      if (first) {
        _mm256_storeu_ps(cr, acc[r][0]);
        _mm256_storeu_ps(cr + 8, acc[r][1]);
      } else {
        _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]));
        _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]));
      }
    }
    return;
  }
  alignas(32) float t[kMR * kNR];
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) {
    _mm256_store_ps(t + r * kNR, acc[r][0]);
    _mm256_store_ps(t + r * kNR + 8, acc[r][1]);
  }
  store_tile(t, mr, nr, c, ldc, first);
}

// The same tile with one 16-float ZMM vector a row: two accumulator sets (even and odd k) give
// 2R independent FMA chains, and a k pair reads 2 B vectors and 2R broadcasts.
template <int R>
IGNIS_AVX512 void kernel_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                int64_t mr, int64_t nr, bool first, int64_t pf) {
  __m512 acc[R], odd[R];
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) acc[r] = odd[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 2 <= kc; k += 2) {
    _mm_prefetch(reinterpret_cast<const char*>(b + pf), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + pf + kNR), _MM_HINT_T0);
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + kNR);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), b0, acc[r]);
      odd[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[kMR + r]), b1, odd[r]);
    }
    a += 2 * kMR;
    b += 2 * kNR;
  }
  if (k < kc) {
    const __m512 b0 = _mm512_loadu_ps(b);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), b0, acc[r]);
  }
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) acc[r] = _mm512_add_ps(acc[r], odd[r]);
  if (nr == kNR) {
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      float* cr = c + r * ldc;
      _mm512_storeu_ps(cr, first ? acc[r] : _mm512_add_ps(_mm512_loadu_ps(cr), acc[r]));
    }
    return;
  }
  alignas(64) float t[kMR * kNR];
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) _mm512_store_ps(t + r * kNR, acc[r]);
  store_tile(t, mr, nr, c, ldc, first);
}

// C [R, 32] (=|+=) A panels @ two B panels side by side (b0, b1: [kc][kNR] each), for R <= 12:
// rows 0..5 from the A panel a0, rows 6.. from a1 ([kc][kMR] each). At R = 12, 24 accumulators,
// each k reading 2 B vectors and 12 broadcasts for 24 FMAs, so B (which does not stay in L1 at
// KC = 1024) is read from L2 once per 12 rows; the 6 x 16 tile reads 7 loads for 6 FMAs. Full
// panels only.
template <int R>
IGNIS_AVX512 void kernel32_avx512(int64_t kc, const float* a0, const float* a1, const float* b0, const float* b1,
                                  float* c, int64_t ldc, bool first, int64_t pf) {
  static_assert(R >= 1 && R <= 2 * kMR);
  __m512 acc[R][2];
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    _mm_prefetch(reinterpret_cast<const char*>(b0 + pf), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b1 + pf), _MM_HINT_T0);
    const __m512 v0 = _mm512_loadu_ps(b0), v1 = _mm512_loadu_ps(b1);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      const __m512 av = _mm512_set1_ps(r < kMR ? a0[r] : a1[r - kMR]);
      acc[r][0] = _mm512_fmadd_ps(av, v0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, v1, acc[r][1]);
    }
    a0 += kMR;
    a1 += kMR;
    b0 += kNR;
    b1 += kNR;
  }
  MATMUL_UNROLL
  for (int r = 0; r < R; r++) {
    float* cr = c + r * ldc;
    _mm512_storeu_ps(cr, first ? acc[r][0] : _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][0]));
    _mm512_storeu_ps(cr + kNR, first ? acc[r][1] : _mm512_add_ps(_mm512_loadu_ps(cr + kNR), acc[r][1]));
  }
}

// One row against up to four packed panels: out [np * 16] = a [K] @ panels, the panels read side
// by side a line at a time, so four streams from memory are in flight (one stream leaves a
// core's bandwidth unused).
IGNIS_AVX2 void gemv_packed(int64_t K, const float* a, const float* b, int64_t ldp, int np,
                            float* out) {
  __m256 acc[4][2];
  MATMUL_UNROLL
  for (int g = 0; g < 4; g++) acc[g][0] = acc[g][1] = _mm256_setzero_ps();
  const float* p[4] = {b, b + ldp * (np > 1), b + ldp * 2 * (np > 2), b + ldp * 3 * (np > 3)};
  for (int64_t k = 0; k < K; k++) {
    const __m256 av = _mm256_broadcast_ss(a + k);
    MATMUL_UNROLL
    for (int g = 0; g < 4; g++) {  // panels past np repeat panel 0; their sums are dropped
      acc[g][0] = _mm256_fmadd_ps(av, _mm256_loadu_ps(p[g]), acc[g][0]);
      acc[g][1] = _mm256_fmadd_ps(av, _mm256_loadu_ps(p[g] + 8), acc[g][1]);
      p[g] += kNR;
    }
  }
  for (int g = 0; g < np; g++) {
    _mm256_storeu_ps(out + g * kNR, acc[g][0]);
    _mm256_storeu_ps(out + g * kNR + 8, acc[g][1]);
  }
}
#endif

// A rows [0, rows) (row i at a + i * lda, dtype dt), columns [k0, k0 + kc) -> dst, panels of kMR
// rows: panel p at dst + p * kc * kMR holds [kc][kMR], rows past `rows` zero. tmp: [kMR * kc].
void pack_a(const void* a, DType dt, int64_t lda, int64_t rows, int64_t k0, int64_t kc,
            float* dst, float* tmp) {
  for (int64_t i = 0; i < rows; i += kMR) {
    const int64_t mr = std::min(kMR, rows - i);
    const float* src[kMR];
    for (int64_t r = 0; r < mr; r++) {
      const void* row = advance(a, dt, (i + r) * lda + k0);
      if (dt == DType::f32) {
        src[r] = static_cast<const float*>(row);
      } else {
        convert_to_f32(row, dt, tmp + r * kc, size_t(kc));
        src[r] = tmp + r * kc;
      }
    }
    float* d = dst + i * kc;
    if (mr == kMR) {
      for (int64_t k = 0; k < kc; k++)
        for (int64_t r = 0; r < kMR; r++) d[k * kMR + r] = src[r][k];
    } else {
      for (int64_t k = 0; k < kc; k++)
        for (int64_t r = 0; r < kMR; r++) d[k * kMR + r] = r < mr ? src[r][k] : 0.f;
    }
  }
}

// Per-thread scratch that only grows, so the packing buffers cost no allocation (or zero fill)
// per call. Each use site has its own buffer: the calling thread packs B and A at once.
enum class Scratch { bpack, cbuf, apack, aall, bpair };
float* scratch(Scratch which, size_t n) {
  thread_local std::vector<float> bufs[5];
  std::vector<float>& v = bufs[int(which)];
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Rows [k0, ...) of the prepacked panel holding column j (a multiple of kNR).
const float* packed_panel(const Problem& p, int64_t j, int64_t k0) {
  return p.b_packed + (j / kNR) * p.K * kNR + k0 * kNR;
}

}  // namespace

void epilogue_row(const float* v, int64_t n, const void* bias, DType dt, Activation act, void* out) {
  constexpr int64_t kChunk = 256;
  float tmp[kChunk], btmp[kChunk];
  for (int64_t j = 0; j < n; j += kChunk) {
    const int64_t w = std::min(kChunk, n - j);
    if (bias) {
      convert_to_f32(advance(bias, dt, j), dt, btmp, size_t(w));
      for (int64_t i = 0; i < w; i++) tmp[i] = v[j + i] + btmp[i];
    } else {
      std::memcpy(tmp, v + j, size_t(w) * 4);
    }
    activate_f32(act, tmp, w);
    convert_from_f32(tmp, advance(out, dt, j), dt, size_t(w));
  }
}

namespace {

// One call of run(): the problem, its blocking, the tile kernels and the thread helpers, with
// each way of walking the blocks a method of its own. all() walks row blocks of M and N blocks
// and picks the way per block.
class Run {
 public:
  Run(ThreadPool* pool, const Problem& p);
  void all();

 private:
  // Every pool thread runs fn(take), and take() hands out [0, n) in pieces, the next unclaimed
  // one at each call ({-1, -1} when none is left): a core slowed by a neighbour (a shared VM)
  // claims fewer pieces instead of holding the others up at the join.
  using Take = std::function<std::pair<int64_t, int64_t>()>;
  void par(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const;
  void claim(int64_t n, int64_t piece, const std::function<void(const Take&)>& fn) const;

  // One (row block of M, N block) of the output, and how its work divides.
  struct Block {
    int64_t m0, ms, ms_pad;  // rows [m0, m0 + ms); ms_pad: ms rounded up to kMR
    int64_t j0, nc, npanel;  // columns [j0, j0 + nc) in npanel panels of kNR
    int64_t mb, nchunks, mc;  // work items: mb row blocks of mc rows x nchunks column chunks
    float* C;  // accumulated [ms, nc] at ldc: out itself (f32), or the f32 buffer
    int64_t ldc;
  };
  Block block(int64_t m0, int64_t ms, int64_t j0) const;
  // C rows [row0, row0 + rows) x columns [j, j + nr) (+)= A rows packed at ap (panel i at
  // ap + i * kc) @ the B panel bp; after the last K block each tile goes through the epilogue
  // into out while it is in L1.
  void tiles(const Block& b, const float* ap, int64_t rows, int64_t row0, const float* bp, int64_t j, int64_t nr,
             int64_t kc, bool first, bool last, int64_t pf = kPrefetch) const;
  // The same over two full panels side by side (bp0 at column j, bp1 at j + kNR), where the
  // 32-column tile kernels exist (AVX-512): 12-row tiles, then 6-row ones for the rest.
  void tiles2(const Block& b, const float* ap, int64_t rows, int64_t row0, const float* bp0, const float* bp1, int64_t j,
              int64_t kc, bool first, bool last) const;
  // After the last K block: C's rows [row, row + mr) x columns [j, j + nr) through the epilogue
  // (bias, activation, output dtype) into out; nothing when out is C itself.
  void finish(const Block& b, int64_t row, int64_t mr, int64_t j, int64_t nr) const;
  void pack_a_all(const Block& b);
  bool gemv_prepacked(const Block& b) const;
  bool small_m_prepacked(const Block& b) const;
  bool few_rows(const Block& b);
  void blocked(const Block& b);

  ThreadPool* pool_;
  const Problem& p_;
  int64_t M_, N_, K_, threads_;
  DType dt_;
  bool direct_;  // f32 out accumulates in place; f16/bf16 out in an f32 buffer over a row block
  bool plain_;   // direct, with no bias and no activation: no epilogue
  int64_t nc_max_, kc_blk_, kc_max_, ms_max_;
  float* cbuf_ = nullptr;
  float* bpack_ = nullptr;  // the shared packed B block, taken on first use
  float* a_all_ = nullptr;  // all of A packed once (a row block's), when a_once
  Kernel kernels_[kMR + 1];  // kernels_[mr]: the tile kernel for mr rows
  using Kernel2 = void (*)(int64_t kc, const float* a0, const float* a1, const float* b0, const float* b1, float* c,
                           int64_t ldc, bool first, int64_t pf);
  Kernel2 kernels2_[kMR + 1] = {};  // the 32-column tile kernels (null: none)
};

Run::Run(ThreadPool* pool, const Problem& p)
    : pool_(pool), p_(p), M_(p.M), N_(p.N), K_(p.K), threads_(pool ? pool->size() : 1), dt_(p.out_type) {
  direct_ = dt_ == DType::f32;
  plain_ = direct_ && !p.bias && p.act == Activation::none;
  nc_max_ = std::min(p.nc > 0 ? p.nc : kNC, N_);
  // A narrow N block (matmul_q's dequantized tiles) keeps the smaller K block, so the packed B
  // block stays an L2 tile.
  kc_blk_ = p.nc > 0 ? kKCSmall : kKC;
  kc_max_ = std::min(kc_blk_, K_);
  ms_max_ = direct_ ? M_ : std::min(M_, 4 * kMC * threads_);
  if (!direct_) cbuf_ = scratch(Scratch::cbuf, size_t(ms_max_ * nc_max_));
  for (Kernel& k : kernels_) k = kernel_scalar;
#if IGNIS_X86
  if (has_avx512()) {
    kernels_[1] = kernel_avx512<1>, kernels_[2] = kernel_avx512<2>, kernels_[3] = kernel_avx512<3>;
    kernels_[4] = kernel_avx512<4>, kernels_[5] = kernel_avx512<5>, kernels_[6] = kernel_avx512<6>;
    kernels2_[1] = kernel32_avx512<1>, kernels2_[2] = kernel32_avx512<2>, kernels2_[3] = kernel32_avx512<3>;
    kernels2_[4] = kernel32_avx512<4>, kernels2_[5] = kernel32_avx512<5>, kernels2_[6] = kernel32_avx512<6>;
  } else if (has_avx2()) {
    kernels_[1] = kernel_avx2<1>, kernels_[2] = kernel_avx2<2>, kernels_[3] = kernel_avx2<3>;
    kernels_[4] = kernel_avx2<4>, kernels_[5] = kernel_avx2<5>, kernels_[6] = kernel_avx2<6>;
  }
#endif
#if IGNIS_ARM64
  if (has_neon()) {
    kernels_[1] = kernel_neon<1>, kernels_[2] = kernel_neon<2>, kernels_[3] = kernel_neon<3>;
    kernels_[4] = kernel_neon<4>, kernels_[5] = kernel_neon<5>, kernels_[6] = kernel_neon<6>;
  }
#endif
}

void Run::par(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const {
  if (pool_ && n > grain) pool_->parallel_for(n, grain, fn);
  else fn(0, n);
}

void Run::claim(int64_t n, int64_t piece, const std::function<void(const Take&)>& fn) const {
  std::atomic<int64_t> next{0};
  const Take take = [&]() -> std::pair<int64_t, int64_t> {
    const int64_t b = next.fetch_add(piece);
    return b < n ? std::make_pair(b, std::min(n, b + piece)) : std::make_pair(int64_t(-1), int64_t(-1));
  };
  if (pool_ && n > piece) pool_->parallel_for(threads_, 1, [&](int64_t, int64_t) { fn(take); });
  else fn(take);
}

Run::Block Run::block(int64_t m0, int64_t ms, int64_t j0) const {
  Block b;
  b.m0 = m0, b.ms = ms, b.ms_pad = round_up(ms, kMR);
  b.j0 = j0, b.nc = std::min(nc_max_, N_ - j0), b.npanel = ceil_div(b.nc, kNR);
  b.C = direct_ ? static_cast<float*>(p_.out) + m0 * N_ + j0 : cbuf_;
  b.ldc = direct_ ? N_ : b.nc;
  // Work items: row blocks (sized so each thread gets whole blocks) x column chunks (when
  // there are fewer row blocks than threads).
  b.mb = ceil_div(ms, kMC), b.nchunks = 1;
  if (ms <= kSmallRows) b.mb = 1;  // one row block: few_rows' walk, column chunks per thread
  if (b.mb >= threads_) b.mb = round_up(b.mb, threads_);
  else b.nchunks = std::min(b.npanel, ceil_div(threads_, b.mb));
  b.mc = round_up(ceil_div(ms, b.mb), kMR);
  b.mb = ceil_div(ms, b.mc);
  return b;
}

void Run::tiles(const Block& b, const float* ap, int64_t rows, int64_t row0, const float* bp, int64_t j, int64_t nr,
                int64_t kc, bool first, bool last, int64_t pf) const {
  for (int64_t i = 0; i < rows; i += kMR) {
    const int64_t mr = std::min(kMR, rows - i);
    float* c = b.C + (row0 + i) * b.ldc + j;
    kernels_[mr](kc, ap + i * kc, bp, c, b.ldc, mr, nr, first, pf);
    if (last) finish(b, row0 + i, mr, j, nr);
  }
}

void Run::finish(const Block& b, int64_t row, int64_t mr, int64_t j, int64_t nr) const {
  if (plain_) return;
  const float* c = b.C + row * b.ldc + j;
  for (int64_t r = 0; r < mr; r++)
    epilogue_row(c + r * b.ldc, nr, p_.bias ? advance(p_.bias, dt_, b.j0 + j) : nullptr, dt_, p_.act,
                 advance(p_.out, dt_, (b.m0 + row + r) * N_ + b.j0 + j));
}

void Run::tiles2(const Block& b, const float* ap, int64_t rows, int64_t row0, const float* bp0, const float* bp1,
                 int64_t j, int64_t kc, bool first, bool last) const {
  int64_t i = 0;
#if IGNIS_X86
  for (; i + 2 * kMR <= rows; i += 2 * kMR) {  // two full row panels: the 12 x 32 tile
    float* c = b.C + (row0 + i) * b.ldc + j;
    kernel32_avx512<2 * kMR>(kc, ap + i * kc, ap + (i + kMR) * kc, bp0, bp1, c, b.ldc, first, kPrefetch);
    if (last) finish(b, row0 + i, 2 * kMR, j, 2 * kNR);
  }
#endif
  for (; i < rows; i += kMR) {
    const int64_t mr = std::min(kMR, rows - i);
    float* c = b.C + (row0 + i) * b.ldc + j;
    kernels2_[mr](kc, ap + i * kc, ap + i * kc, bp0, bp1, c, b.ldc, first, kPrefetch);  // rows < 6: a1 unread
    if (last) finish(b, row0 + i, mr, j, 2 * kNR);
  }
}

// With several N blocks the main path would pack each A block once per N block: it packs all of
// A once instead (K block k0 at a_all + ms_pad * k0, as pack_a lays out rows [0, ms)).
void Run::pack_a_all(const Block& b) {
  a_all_ = scratch(Scratch::aall, size_t(b.ms_pad * K_));
  // work items: K blocks x runs of 8 row panels
  constexpr int64_t kRun = 8 * kMR;
  const int64_t nk = ceil_div(K_, kc_blk_), nr = ceil_div(b.ms, kRun);
  par(nk * nr, 1, [&](int64_t b0, int64_t b1) {
    float* tmp = scratch(Scratch::apack, size_t(kMR * kc_max_));  // f16/bf16 rows in f32
    for (int64_t it = b0; it < b1; it++) {
      const int64_t k0 = (it / nr) * kc_blk_, kc = std::min(kc_blk_, K_ - k0), r0 = (it % nr) * kRun;
      pack_a(advance(p_.a, p_.a_type, (b.m0 + r0) * K_), p_.a_type, K_, std::min(kRun, b.ms - r0), k0, kc,
             a_all_ + b.ms_pad * k0 + r0 * kc, tmp);
    }
  });
}

// Decode at batch 1 against a packed weight: four panels at a time, all of K.
bool Run::gemv_prepacked(const Block& b) const {
#if IGNIS_X86
  if (!p_.b_packed || b.ms != 1 || !has_avx2()) return false;
  std::vector<float> a32;
  const float* arow = static_cast<const float*>(advance(p_.a, p_.a_type, b.m0 * K_));
  if (p_.a_type != DType::f32) {
    a32.resize(size_t(K_));
    convert_to_f32(arow, p_.a_type, a32.data(), size_t(K_));
    arow = a32.data();
  }
  constexpr int64_t kGroup = 4;
  claim(ceil_div(b.npanel, kGroup), 2, [&](const Take& take) {
    float acc[kGroup * kNR];
    for (auto [g0, g1] = take(); g0 >= 0; std::tie(g0, g1) = take())
      for (int64_t g = g0; g < g1; g++) {
        const int64_t q = g * kGroup, np = std::min(kGroup, b.npanel - q);
        const int64_t j = q * kNR, w = std::min(np * kNR, b.nc - j);
        gemv_packed(K_, arow, packed_panel(p_, b.j0 + j, 0), K_ * kNR, int(np), acc);
        epilogue_row(acc, w, p_.bias ? advance(p_.bias, dt_, b.j0 + j) : nullptr, dt_, p_.act,
                     advance(p_.out, dt_, b.m0 * N_ + b.j0 + j));
      }
  });
  return true;
#else
  (void)b;
  return false;
#endif
}

// Prepacked B, fewer than 12 rows (a decode batch): A packed whole once per thread, then each
// thread walks its panels one at a time down all of K, so B streams from memory in one sequential
// run per panel, and each K-block slice (16 KB) serves every row tile from L1.
bool Run::small_m_prepacked(const Block& b) const {
  if (!(p_.b_packed && b.mb == 1 && b.nchunks > 1 && b.ms < 2 * kMR && b.ms_pad * K_ <= (int64_t(1) << 21) &&
        2 * b.ms * b.nc * K_ >= (int64_t(1) << 20)))
    return false;
  claim(b.npanel, 4, [&](const Take& take) {
    float* apack = scratch(Scratch::apack, size_t(b.ms_pad * K_ + kMR * kc_max_));
    float* atmp = apack + b.ms_pad * K_;
    // K-block k0 of A at apack + ms_pad * k0, as pack_a lays it out
    for (int64_t k0 = 0; k0 < K_; k0 += kKCSmall)
      pack_a(advance(p_.a, p_.a_type, b.m0 * K_), p_.a_type, K_, b.ms, k0, std::min(kKCSmall, K_ - k0),
             apack + b.ms_pad * k0, atmp);
    for (auto [p0, p1] = take(); p0 >= 0; std::tie(p0, p1) = take())
      for (int64_t q = p0; q < p1; q++) {
        const int64_t j = q * kNR, nr = std::min(kNR, b.nc - j);
        for (int64_t k0 = 0; k0 < K_; k0 += kKCSmall) {
          const int64_t kc = std::min(kKCSmall, K_ - k0);
          const bool first = k0 == 0, last = k0 + kc == K_;
          // Prefetch a whole slice ahead (the next K block of this panel, or the next panel:
          // both follow in the packed layout): the first row tile pulls B from memory, and a
          // 64-row lookahead is too short to hide that.
          tiles(b, apack + b.ms_pad * k0, b.ms, 0, packed_panel(p_, b.j0 + j, k0), j, nr, kc, first, last, kc * kNR);
        }
      }
  });
  return true;
}

// One row block of up to kSmallRows rows (a prefill's or a batched decode's), on any number of
// threads: all of A packed once, then the threads claim pairs of column panels, and for each pair
// walk K in blocks, the pair's B block packed right before use (or prepacked) and run through
// every row tile (12 x 32 where the CPU has the tile). B is read from memory once and converted once, with no shared
// buffer and no join between K blocks; the pair's sums stay in cache across the K blocks.
bool Run::few_rows(const Block& b) {
  if (!(b.mb == 1 && b.ms_pad * K_ <= (int64_t(1) << 21) &&
        2 * b.ms * b.nc * K_ >= (int64_t(1) << 22)))
    return false;
  if (!a_all_) pack_a_all(b);
  constexpr int64_t kGroup = 2;
  claim(ceil_div(b.npanel, kGroup), 1, [&](const Take& take) {
    float* bgroup = p_.b_packed ? nullptr : scratch(Scratch::bpair, size_t(kGroup * kNR * kc_max_));
    for (auto [g0, g1] = take(); g0 >= 0; std::tie(g0, g1) = take())
      for (int64_t g = g0; g < g1; g++) {
        const int64_t q = g * kGroup, j = q * kNR, w = std::min(kGroup * kNR, b.nc - j);
        for (int64_t k0 = 0; k0 < K_; k0 += kc_blk_) {
          const int64_t kc = std::min(kc_blk_, K_ - k0);
          const bool first = k0 == 0, last = k0 + kc == K_;
          const float* ap = a_all_ + b.ms_pad * k0;
          if (!p_.b_packed) p_.pack_b(p_.b_ctx, k0, kc, b.j0 + j, w, bgroup);
          // panel h of the pair, at K block k0
          auto panel = [&](int64_t h) {
            return p_.b_packed ? packed_panel(p_, b.j0 + j + h * kNR, k0) : bgroup + h * kc * kNR;
          };
          if (kernels2_[1] && w == kGroup * kNR) {
            tiles2(b, ap, b.ms, 0, panel(0), panel(1), j, kc, first, last);
            continue;
          }
          for (int64_t h = 0; h * kNR < w; h++)
            tiles(b, ap, b.ms, 0, panel(h), j + h * kNR, std::min(kNR, w - h * kNR), kc, first, last);
        }
      }
  });
  return true;
}

// The main path: per K block, B packed into the shared block (unless prepacked), then the work
// items claimed by the threads, each packing its A rows (unless all of A is packed already).
void Run::blocked(const Block& b) {
  for (int64_t k0 = 0; k0 < K_; k0 += kc_blk_) {
    const int64_t kc = std::min(kc_blk_, K_ - k0);
    const bool first = k0 == 0, last = k0 + kc == K_;
    // B[k0 : k0 + kc, j0 : j0 + nc] -> bpack [npanel][kc][kNR]
    if (!p_.b_packed) {
      if (!bpack_) bpack_ = scratch(Scratch::bpack, size_t(round_up(nc_max_, kNR) * kc_max_));
      claim(b.npanel, std::max<int64_t>(1, 2048 / kc), [&](const Take& take) {
        for (auto [s, e] = take(); s >= 0; std::tie(s, e) = take())
          p_.pack_b(p_.b_ctx, k0, kc, b.j0 + s * kNR, std::min(b.nc, e * kNR) - s * kNR, bpack_ + s * kc * kNR);
      });
    }
    const int64_t items = b.mb * b.nchunks;
    const bool small = 2 * b.ms * b.nc * kc < (int64_t(1) << 20);
    claim(items, small ? items : 1, [&](const Take& take) {
      float* apack = scratch(Scratch::apack, size_t((b.mc + kMR) * kc));
      float* atmp = apack + b.mc * kc;  // [kMR][kc] when A is f16/bf16
      int64_t packed = -1;
      for (auto [s, e] = take(); s >= 0; std::tie(s, e) = take())
        for (int64_t it = s; it < e; it++) {
          const int64_t ib = it / b.nchunks, jc = it % b.nchunks;
          const int64_t i0 = ib * b.mc, rows = std::min(b.mc, b.ms - i0);
          if (!a_all_ && ib != packed) {
            pack_a(advance(p_.a, p_.a_type, (b.m0 + i0) * K_), p_.a_type, K_, rows, k0, kc, apack, atmp);
            packed = ib;
          }
          const float* ap = a_all_ ? a_all_ + b.ms_pad * k0 + i0 * kc : apack;
          const int64_t p0 = jc * b.npanel / b.nchunks, p1 = (jc + 1) * b.npanel / b.nchunks;
          for (int64_t q = p0; q < p1; q++) {
            const int64_t j = q * kNR, nr = std::min(kNR, b.nc - j);
            const float* bp = p_.b_packed ? packed_panel(p_, b.j0 + j, k0) : bpack_ + q * kc * kNR;
            if (kernels2_[1] && q + 1 < p1 && b.nc - j >= 2 * kNR) {  // two full panels: the 32-column tile
              const float* bp1 = p_.b_packed ? packed_panel(p_, b.j0 + j + kNR, k0) : bpack_ + (q + 1) * kc * kNR;
              tiles2(b, ap, rows, i0, bp, bp1, j, kc, first, last);
              q++;
              continue;
            }
            tiles(b, ap, rows, i0, bp, j, nr, kc, first, last);
          }
        }
    });
  }
}

void Run::all() {
  for (int64_t m0 = 0; m0 < M_; m0 += ms_max_) {
    const int64_t ms = std::min(ms_max_, M_ - m0);
    // All of A packed once, on the main path's first use, where there are several N blocks and
    // that takes at most 16 MB.
    a_all_ = nullptr;
    const bool a_once = N_ > nc_max_ && round_up(ms, kMR) * K_ <= (int64_t(1) << 22);
    for (int64_t j0 = 0; j0 < N_; j0 += nc_max_) {
      const Block b = block(m0, ms, j0);
      if (gemv_prepacked(b) || small_m_prepacked(b) || few_rows(b)) continue;
      if (a_once && !a_all_) pack_a_all(b);
      blocked(b);
    }
  }
}

}  // namespace

void run(ThreadPool* pool, const Problem& p) { Run(pool, p).all(); }

}  // namespace gemm
}  // namespace ignis::cpu
