// matmul: out [batch..., M, N] = act(a @ b + bias) in f32/f16/bf16 with numpy batch broadcasting.
// Holds the packed GEMM engine (gemm::run, also used by matmul_q) for M > 8, and a GEMV-style
// path for M <= 8 (decode) that streams B once: b [K, N] split over K (each core reads one
// contiguous half), b [N, K] split over N.
#include <algorithm>
#include <atomic>
#include <tuple>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "../core/activation.h"
#include "cpu.h"
#include "matmul_gemm.h"
#include "simd.h"

namespace ignis::cpu {
namespace gemm {
namespace {

// Block sizes for this class of core (Zen 3: 32 KB L1d, 512 KB L2, shared 32 MB L3); measured
// on 1024^3 and 2048^3 f32, where KC = 512 halves the passes over C against KC = 256.
constexpr int64_t kKC = 512;       // K block: a B micro-panel (KC x 16 f32, 32 KB) is read from L1
constexpr int64_t kKCSmall = 256;  // K block when B is packed panel by panel (small M) or N is narrow
constexpr int64_t kMC = 72;        // M block: the packed A block (MC x KC f32, 144 KB) stays in L2
constexpr int64_t kNC = 2048;      // N block: the packed B block (KC x NC f32, 4 MB) stays in L3

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
enum class Scratch { bpack, cbuf, apack, aall };
float* scratch(Scratch which, size_t n) {
  thread_local std::vector<float> bufs[4];
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
    if (act != Activation::none)
      dispatch_activation(act, [&](auto a) {
        for (int64_t i = 0; i < w; i++) tmp[i] = activate<decltype(a)::value>(tmp[i]);
      });
    convert_from_f32(tmp, advance(out, dt, j), dt, size_t(w));
  }
}

void run(ThreadPool* pool, const Problem& p) {
  const int64_t M = p.M, N = p.N, K = p.K;
  const DType dt = p.out_type;
  const int64_t threads = pool ? pool->size() : 1;
  // f32 out accumulates in place; f16/bf16 out accumulates in an f32 buffer over a row block.
  const bool direct = dt == DType::f32;
  const bool plain = direct && !p.bias && p.act == Activation::none;
  const int64_t nc_max = std::min(p.nc > 0 ? p.nc : kNC, N);
  // A narrow N block (matmul_q's dequantized tiles) keeps the smaller K block, so the packed B
  // block stays an L2 tile.
  const int64_t kc_blk = p.nc > 0 ? kKCSmall : kKC;
  const int64_t kc_max = std::min(kc_blk, K);
  const int64_t ms_max = direct ? M : std::min(M, 4 * kMC * threads);
  float* cbuf = direct ? nullptr : scratch(Scratch::cbuf, size_t(ms_max * nc_max));
  float* bpack = nullptr;  // the shared packed B block, taken on first use
  // kernels[mr]: the tile kernel for mr rows
  Kernel kernels[kMR + 1];
  for (Kernel& k : kernels) k = kernel_scalar;
#if IGNIS_X86
  if (has_avx2()) {
    kernels[1] = kernel_avx2<1>, kernels[2] = kernel_avx2<2>, kernels[3] = kernel_avx2<3>;
    kernels[4] = kernel_avx2<4>, kernels[5] = kernel_avx2<5>, kernels[6] = kernel_avx2<6>;
  }
#endif
  auto par = [&](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (pool && n > grain) pool->parallel_for(n, grain, fn);
    else fn(0, n);
  };
  // Every pool thread runs fn(take), and take() hands out [0, n) in pieces, the next unclaimed
  // one at each call ({-1, -1} when none is left): a core slowed by a neighbour (a shared VM)
  // claims fewer pieces instead of holding the others up at the join.
  using Take = std::function<std::pair<int64_t, int64_t>()>;
  auto claim = [&](int64_t n, int64_t piece, const std::function<void(const Take&)>& fn) {
    std::atomic<int64_t> next{0};
    const Take take = [&]() -> std::pair<int64_t, int64_t> {
      const int64_t b = next.fetch_add(piece);
      return b < n ? std::make_pair(b, std::min(n, b + piece)) : std::make_pair(int64_t(-1), int64_t(-1));
    };
    if (pool && n > piece) pool->parallel_for(threads, 1, [&](int64_t, int64_t) { fn(take); });
    else fn(take);
  };

  for (int64_t m0 = 0; m0 < M; m0 += ms_max) {
    const int64_t ms = std::min(ms_max, M - m0);
    const int64_t ms_pad = round_up(ms, kMR);
    // With several N blocks the main path would pack each A block once per N block: it packs all
    // of A once instead (K block k0 at a_all + ms_pad * k0, as pack_a lays out rows [0, ms)), on
    // its first use, where that takes at most 16 MB.
    float* a_all = nullptr;
    const bool a_once = N > nc_max && ms_pad * K <= (int64_t(1) << 22);
    auto pack_a_all = [&] {
      a_all = scratch(Scratch::aall, size_t(ms_pad * K));
      par(ceil_div(K, kc_blk), 1, [&](int64_t b0, int64_t b1) {
        float* tmp = scratch(Scratch::apack, size_t(kMR * kc_max));  // f16/bf16 rows in f32
        for (int64_t b = b0; b < b1; b++) {
          const int64_t k0 = b * kc_blk;
          pack_a(advance(p.a, p.a_type, m0 * K), p.a_type, K, ms, k0, std::min(kc_blk, K - k0), a_all + ms_pad * k0, tmp);
        }
      });
    };
    for (int64_t j0 = 0; j0 < N; j0 += nc_max) {
      const int64_t nc = std::min(nc_max, N - j0);
      const int64_t npanel = ceil_div(nc, kNR);
      float* C = direct ? static_cast<float*>(p.out) + m0 * N + j0 : cbuf;
      const int64_t ldc = direct ? N : nc;
      // C rows [row0, row0 + rows) x columns [j, j + nr) (+)= A rows packed at ap (panel i at
      // ap + i * kc) @ the B panel bp; after the last K block each tile goes through the epilogue
      // into out while it is in L1.
      auto tiles = [&](const float* ap, int64_t rows, int64_t row0, const float* bp, int64_t j, int64_t nr,
                       int64_t kc, bool first, bool last, int64_t pf = kPrefetch) {
        for (int64_t i = 0; i < rows; i += kMR) {
          const int64_t mr = std::min(kMR, rows - i);
          float* c = C + (row0 + i) * ldc + j;
          kernels[mr](kc, ap + i * kc, bp, c, ldc, mr, nr, first, pf);
          if (!last || plain) continue;
          for (int64_t r = 0; r < mr; r++)
            epilogue_row(c + r * ldc, nr, p.bias ? advance(p.bias, dt, j0 + j) : nullptr, dt, p.act,
                         advance(p.out, dt, (m0 + row0 + i + r) * N + j0 + j));
        }
      };

      // Work items: row blocks (sized so each thread gets whole blocks) x column chunks (when
      // there are fewer row blocks than threads).
      int64_t mb = ceil_div(ms, kMC), nchunks = 1;
      if (mb >= threads) mb = round_up(mb, threads);
      else nchunks = std::min(npanel, ceil_div(threads, mb));
      const int64_t mc = round_up(ceil_div(ms, mb), kMR);
      mb = ceil_div(ms, mc);

#if IGNIS_X86
      if (p.b_packed && ms == 1 && has_avx2()) {
        // Decode at batch 1 against a packed weight: four panels at a time, all of K.
        std::vector<float> a32;
        const float* arow = static_cast<const float*>(advance(p.a, p.a_type, m0 * K));
        if (p.a_type != DType::f32) {
          a32.resize(size_t(K));
          convert_to_f32(arow, p.a_type, a32.data(), size_t(K));
          arow = a32.data();
        }
        constexpr int64_t kGroup = 4;
        claim(ceil_div(npanel, kGroup), 2, [&](const Take& take) {
          float acc[kGroup * kNR];
          for (auto [g0, g1] = take(); g0 >= 0; std::tie(g0, g1) = take())
            for (int64_t g = g0; g < g1; g++) {
              const int64_t q = g * kGroup, np = std::min(kGroup, npanel - q);
              const int64_t j = q * kNR, w = std::min(np * kNR, nc - j);
              gemv_packed(K, arow, packed_panel(p, j0 + j, 0), K * kNR, int(np), acc);
              epilogue_row(acc, w, p.bias ? advance(p.bias, dt, j0 + j) : nullptr, dt, p.act,
                           advance(p.out, dt, m0 * N + j0 + j));
            }
        });
        continue;
      }
#endif
      if (p.b_packed && mb == 1 && nchunks > 1 && ms_pad * K <= (int64_t(1) << 21) &&
          2 * ms * nc * K >= (int64_t(1) << 20)) {
        // Prepacked B, small M (decode): A packed whole once per thread, then each thread walks
        // its panels one at a time down all of K, so B streams from memory in one sequential
        // run per panel, and each K-block slice (16 KB) serves every row tile from L1.
        claim(npanel, 4, [&](const Take& take) {
          float* apack = scratch(Scratch::apack, size_t(ms_pad * K + kMR * kc_max));
          float* atmp = apack + ms_pad * K;
          // K-block k0 of A at apack + ms_pad * k0, as pack_a lays it out
          for (int64_t k0 = 0; k0 < K; k0 += kKCSmall)
            pack_a(advance(p.a, p.a_type, m0 * K), p.a_type, K, ms, k0, std::min(kKCSmall, K - k0),
                   apack + ms_pad * k0, atmp);
          for (auto [p0, p1] = take(); p0 >= 0; std::tie(p0, p1) = take())
          for (int64_t q = p0; q < p1; q++) {
            const int64_t j = q * kNR, nr = std::min(kNR, nc - j);
            for (int64_t k0 = 0; k0 < K; k0 += kKCSmall) {
              const int64_t kc = std::min(kKCSmall, K - k0);
              const bool first = k0 == 0, last = k0 + kc == K;
              // Prefetch a whole slice ahead (the next K block of this panel, or the next
              // panel: both follow in the packed layout): the first row tile pulls B from
              // memory, and a 64-row lookahead is too short to hide that.
              tiles(apack + ms_pad * k0, ms, 0, packed_panel(p, j0 + j, k0), j, nr, kc, first, last, kc * kNR);
            }
          }
        });
        continue;
      }

      if (mb == 1 && nchunks > 1 && 2 * ms * nc * K >= (int64_t(1) << 22)) {
        // One row block (small M): each thread takes its own column panels and packs each B
        // panel right before using it, so B goes memory -> L1 once, with no shared buffer.
        par(nchunks, 1, [&](int64_t cb, int64_t ce) {
          const int64_t p0 = cb * npanel / nchunks, p1 = ce * npanel / nchunks;
          // Two panels packed a call: a 128-byte run of each B row, and the pair (32 KB at
          // KC = 256) stays in L1 for the kernel.
          constexpr int64_t kGroup = 2;
          float* apack = scratch(Scratch::apack, size_t((mc + kMR + kGroup * kNR) * kc_max));
          float* atmp = apack + mc * kc_max;  // [kMR][kc] when A is f16/bf16
          float* bgroup = atmp + kMR * kc_max;
          for (int64_t k0 = 0; k0 < K; k0 += kKCSmall) {
            const int64_t kc = std::min(kKCSmall, K - k0);
            const bool first = k0 == 0, last = k0 + kc == K;
            pack_a(advance(p.a, p.a_type, m0 * K), p.a_type, K, ms, k0, kc, apack, atmp);
            for (int64_t q = p0; q < p1; q++) {
              const int64_t j = q * kNR, nr = std::min(kNR, nc - j);
              const float* bp;
              if (p.b_packed) {
                bp = packed_panel(p, j0 + j, k0);
              } else {
                if ((q - p0) % kGroup == 0)
                  p.pack_b(p.b_ctx, k0, kc, j0 + j,
                           std::min(kGroup * kNR, std::min(p1 * kNR, nc) - j), bgroup);
                bp = bgroup + ((q - p0) % kGroup) * kc * kNR;
              }
              tiles(apack, ms, 0, bp, j, nr, kc, first, last);
            }
          }
        });
        continue;
      }

      if (a_once && !a_all) pack_a_all();
      for (int64_t k0 = 0; k0 < K; k0 += kc_blk) {
        const int64_t kc = std::min(kc_blk, K - k0);
        const bool first = k0 == 0, last = k0 + kc == K;
        // B[k0 : k0 + kc, j0 : j0 + nc] -> bpack [npanel][kc][kNR]
        if (!p.b_packed) {
          if (!bpack) bpack = scratch(Scratch::bpack, size_t(round_up(nc_max, kNR) * kc_max));
          claim(npanel, std::max<int64_t>(1, 2048 / kc), [&](const Take& take) {
            for (auto [b, e] = take(); b >= 0; std::tie(b, e) = take())
              p.pack_b(p.b_ctx, k0, kc, j0 + b * kNR, std::min(nc, e * kNR) - b * kNR,
                       bpack + b * kc * kNR);
          });
        }
        const int64_t items = mb * nchunks;
        const bool small = 2 * ms * nc * kc < (int64_t(1) << 20);
        claim(items, small ? items : 1, [&](const Take& take) {
          float* apack = scratch(Scratch::apack, size_t((mc + kMR) * kc));
          float* atmp = apack + mc * kc;  // [kMR][kc] when A is f16/bf16
          int64_t packed = -1;
          for (auto [b, e] = take(); b >= 0; std::tie(b, e) = take())
          for (int64_t it = b; it < e; it++) {
            const int64_t ib = it / nchunks, jc = it % nchunks;
            const int64_t i0 = ib * mc, rows = std::min(mc, ms - i0);
            if (!a_all && ib != packed) {
              pack_a(advance(p.a, p.a_type, (m0 + i0) * K), p.a_type, K, rows, k0, kc, apack, atmp);
              packed = ib;
            }
            const float* ap = a_all ? a_all + ms_pad * k0 + i0 * kc : apack;
            const int64_t p0 = jc * npanel / nchunks, p1 = (jc + 1) * npanel / nchunks;
            for (int64_t q = p0; q < p1; q++) {
              const int64_t j = q * kNR, nr = std::min(kNR, nc - j);
              const float* bp = p.b_packed ? packed_panel(p, j0 + j, k0) : bpack + q * kc * kNR;
              tiles(ap, rows, i0, bp, j, nr, kc, first, last);
            }
          }
        });
      }
    }
  }
}

}  // namespace gemm

namespace {

using gemm::advance;
using gemm::kNR;

// B as the GEMM engine's packers see it: b [K, N] (ld = N) or, transposed, [N, K] (ld = K).
struct DenseB {
  const void* b;
  int64_t ld;
};

template <class T>
void row_to_f32(const T* src, float* dst, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(dst, src, size_t(n) * 4);
  } else if constexpr (std::is_same_v<T, f16>) {
    convert_to_f32(src, DType::f16, dst, size_t(n));
  } else {
    for (int64_t i = 0; i < n; i++) dst[i] = to_f32(src[i]);
  }
}

// b [K, ld] rows k0.., columns j0..j0+n -> panels: each row of b is read once, left to right.
template <class T>
void pack_b_nt(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  const auto& d = *static_cast<const DenseB*>(ctx);
  const T* b = static_cast<const T*>(d.b) + k0 * d.ld + j0;
  for (int64_t k = 0; k < kc; k++) {
    const T* row = b + k * d.ld;
    // The next call's columns of this row: rows are far apart, so the hardware prefetcher
    // does not see a stream.
    for (int64_t j = 0; j < std::min<int64_t>(n, 64); j += 64 / int64_t(sizeof(T)))
      __builtin_prefetch(row + n + j);
    // and this call's columns 8 rows down, the same kind of far-apart lines (+1.5% at 1024^3)
    if (k + 8 < kc)
      for (int64_t j = 0; j < n; j += 64 / int64_t(sizeof(T))) __builtin_prefetch(row + 8 * d.ld + j);
    for (int64_t j = 0; j < n; j += kNR) {
      const int64_t nr = std::min(kNR, n - j);
      float* o = dst + ((j / kNR) * kc + k) * kNR;
      if (nr == kNR) {
        for (int64_t c = 0; c < kNR; c++) o[c] = to_f32(row[j + c]);
      } else {
        for (int64_t c = 0; c < nr; c++) o[c] = to_f32(row[j + c]);
        for (int64_t c = nr; c < kNR; c++) o[c] = 0.f;
      }
    }
  }
}

// b [N, ld] (B transposed) rows j0..j0+n, columns k0..k0+kc -> panels.
template <class T>
void pack_b_t(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  const auto& d = *static_cast<const DenseB*>(ctx);
  for (int64_t j = 0; j < n; j += kNR) {
    const int64_t nr = std::min(kNR, n - j);
    const T* b = static_cast<const T*>(d.b) + (j0 + j) * d.ld + k0;
    float* o = dst + (j / kNR) * kc * kNR;
    int64_t k = 0;
#if IGNIS_X86
    if constexpr (std::is_same_v<T, float>) {
      if (nr == kNR && has_avx2()) {
        for (; k + 8 <= kc; k += 8) {
          transpose8(b + k, d.ld, o + k * kNR, kNR);
          transpose8(b + 8 * d.ld + k, d.ld, o + k * kNR + 8, kNR);
        }
      }
    }
#endif
    for (; k < kc; k++) {
      float* ok = o + k * kNR;
      for (int64_t c = 0; c < nr; c++) ok[c] = to_f32(b[c * d.ld + k]);
      for (int64_t c = nr; c < kNR; c++) ok[c] = 0.f;
    }
  }
}

// ---- M <= 8: out rows [M, w] = a [M, K] (f32) @ b, for output columns [n0, n0 + w) ----

// acc [M][w] += a [M, kr] (row stride lda) @ b [kr, w] (row stride ldb), streaming b's rows once.
template <class T>
void gemv_nt_scalar(int64_t M, int64_t kr, const float* a, int64_t lda, const T* b, int64_t ldb,
                    int64_t w, float* acc) {
  std::vector<float> row(static_cast<size_t>(w));
  for (int64_t k = 0; k < kr; k++) {
    row_to_f32(b + k * ldb, row.data(), w);
    for (int64_t m = 0; m < M; m++) {
      const float am = a[m * lda + k];
      float* o = acc + m * w;
      for (int64_t j = 0; j < w; j++) o[j] += am * row[size_t(j)];
    }
  }
}

// b [N, K] at row n0: acc [M][w] = a @ b^T, one dot product per (m, n).
template <class T>
void gemv_t_scalar(int64_t M, int64_t K, const float* a, const T* b, int64_t w, float* acc) {
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = 0; n < w; n++) {
    row_to_f32(b + n * K, row.data(), K);
    for (int64_t m = 0; m < M; m++) {
      const float* am = a + m * K;
      float s = 0.f;
      for (int64_t k = 0; k < K; k++) s += am[k] * row[size_t(k)];
      acc[m * w + n] = s;
    }
  }
}

#if IGNIS_X86
// acc [M][w] += a [M, kr] (row stride lda) @ b [kr, w] (row stride ldb). Eight rows of b at a time
// in column chunks that stay in L1 while each row of a passes over them; acc [M][w] stays in
// L1/L2, so b (the only large operand) streams from memory once, in long runs.
template <class T>
IGNIS_AVX2 void gemv_nt_avx2(int64_t M, int64_t kr, const float* a, int64_t lda, const T* b,
                             int64_t ldb, int64_t w, float* acc) {

  constexpr int64_t kCols = 512;
  int64_t k = 0;
  for (; k + 8 <= kr; k += 8) {
    const T* bk = b + k * ldb;
    for (int64_t c0 = 0; c0 < w; c0 += kCols) {
      const int64_t cw = std::min(kCols, w - c0), cv = cw / 8 * 8;
      const T* b0 = bk + c0;
      for (int64_t m = 0; m < M; m++) {
        const float* am = a + m * lda + k;
        const __m256 x0 = _mm256_broadcast_ss(am + 0), x1 = _mm256_broadcast_ss(am + 1);
        const __m256 x2 = _mm256_broadcast_ss(am + 2), x3 = _mm256_broadcast_ss(am + 3);
        const __m256 x4 = _mm256_broadcast_ss(am + 4), x5 = _mm256_broadcast_ss(am + 5);
        const __m256 x6 = _mm256_broadcast_ss(am + 6), x7 = _mm256_broadcast_ss(am + 7);
        float* o = acc + m * w + c0;
        for (int64_t j = 0; j < cv; j += 8) {
          const T* bj = b0 + j;
          __m256 u = _mm256_fmadd_ps(x0, load8(bj), _mm256_loadu_ps(o + j));
          __m256 v = _mm256_mul_ps(x1, load8(bj + ldb));
          u = _mm256_fmadd_ps(x2, load8(bj + 2 * ldb), u);
          v = _mm256_fmadd_ps(x3, load8(bj + 3 * ldb), v);
          u = _mm256_fmadd_ps(x4, load8(bj + 4 * ldb), u);
          v = _mm256_fmadd_ps(x5, load8(bj + 5 * ldb), v);
          u = _mm256_fmadd_ps(x6, load8(bj + 6 * ldb), u);
          v = _mm256_fmadd_ps(x7, load8(bj + 7 * ldb), v);
          _mm256_storeu_ps(o + j, _mm256_add_ps(u, v));
        }
        for (int64_t j = cv; j < cw; j++) {
          float t = o[j];
          for (int r = 0; r < 8; r++) t += am[r] * to_f32(b0[r * ldb + j]);
          o[j] = t;
        }
      }
    }
  }
  if (k < kr) gemv_nt_scalar(M, kr - k, a + k, lda, b + k * ldb, ldb, w, acc);
}

// out [MM][R] (row stride ldo) = a [MM, K] @ b [R, K]^T
template <int MM, int R, class T>
IGNIS_AVX2 inline void dot_tile(int64_t K, const float* a, const T* b, float* out, int64_t ldo) {

  __m256 acc[MM][R];
  MATMUL_UNROLL
  for (int m = 0; m < MM; m++)
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) acc[m][r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 av[MM];
    MATMUL_UNROLL
    for (int m = 0; m < MM; m++) av[m] = _mm256_loadu_ps(a + m * K + k);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      const __m256 bv = load8(b + r * K + k);
      MATMUL_UNROLL
      for (int m = 0; m < MM; m++) acc[m][r] = _mm256_fmadd_ps(av[m], bv, acc[m][r]);
    }
  }
  for (int m = 0; m < MM; m++) {
    for (int r = 0; r < R; r++) {
      float s = hsum8(acc[m][r]);
      for (int64_t kk = k; kk < K; kk++) s += a[m * K + kk] * to_f32(b[r * K + kk]);
      out[m * ldo + r] = s;
    }
  }
}

template <int MM, int R, class T>
IGNIS_AVX2 inline void dot_rows(int64_t K, const float* a, const T* b, int64_t w, float* acc,
                                int64_t ldo) {
  int64_t n = 0;
  for (; n + R <= w; n += R) dot_tile<MM, R>(K, a, b + n * K, acc + n, ldo);
  for (; n < w; n++) dot_tile<MM, 1>(K, a, b + n * K, acc + n, ldo);
}

template <class T>
IGNIS_AVX2 void gemv_t_avx2(int64_t M, int64_t K, const float* a, const T* b, int64_t w, float* acc) {
  // Blocks of b rows small enough to stay in L2 while every group of a's rows passes over them,
  // so b is read from memory once.
  const int64_t nb = std::max<int64_t>(8, (int64_t(65536) / (K * int64_t(sizeof(T)))) / 24 * 24);
  for (int64_t n0 = 0; n0 < w; n0 += nb) {
    const int64_t bw = std::min(nb, w - n0);
    const T* bn = b + n0 * K;
    for (int64_t m = 0; m < M;) {
      const int64_t mm = std::min<int64_t>(4, M - m);
      const float* am = a + m * K;
      float* o = acc + m * w + n0;
      switch (mm) {
        case 1: dot_rows<1, 8>(K, am, bn, bw, o, w); break;
        case 2: dot_rows<2, 4>(K, am, bn, bw, o, w); break;
        case 3: dot_rows<3, 3>(K, am, bn, bw, o, w); break;
        default: dot_rows<4, 2>(K, am, bn, bw, o, w); break;
      }
      m += mm;
    }
  }
}
#endif

// out [M, N] = act(a [M, K] @ b + bias) for M <= 8. b [N, K]: columns (rows of b) split over
// the pool. b [K, N] with a long K: K split over the pool, each thread streaming its own
// contiguous rows of b into a private [M, N] sum, the sums added at the end.
template <class T>
void matmul_small_m(ThreadPool* pool, int64_t M, int64_t N, int64_t K, const T* a, const T* b,
                    bool transpose_b, const void* bias, Activation act, T* out, DType dt) {
  std::vector<float> a32;
  const float* af;
  if constexpr (std::is_same_v<T, float>) {
    af = a;
  } else {
    a32.resize(size_t(M * K));
    convert_to_f32(a, dt, a32.data(), size_t(M * K));
    af = a32.data();
  }
  const bool avx2 = has_avx2();
  // acc [M][w] (+)= a [M, k0:k0+kr] @ b [k0:k0+kr, n0:n0+w]
  auto nt = [&](int64_t k0, int64_t kr, int64_t n0, int64_t w, float* acc) {
#if IGNIS_X86
    if (avx2) return gemv_nt_avx2(M, kr, af + k0, K, b + k0 * N + n0, N, w, acc);
#endif
    (void)avx2;
    gemv_nt_scalar(M, kr, af + k0, K, b + k0 * N + n0, N, w, acc);
  };
  const int64_t threads = pool ? pool->size() : 1;
  const bool big = M * N * K >= (int64_t(1) << 17);
  const int64_t parts = std::min(threads, K / 256);
  if (!transpose_b && big && parts > 1) {
    std::vector<float> sums(size_t(parts * M * N), 0.f);  // [parts][M][N]
    pool->parallel_for(parts, 1, [&](int64_t s, int64_t e) {
      for (int64_t t = s; t < e; t++) {
        const int64_t k0 = t * K / parts, k1 = (t + 1) * K / parts;
        nt(k0, k1 - k0, 0, N, sums.data() + t * M * N);
      }
    });
    pool->parallel_for(N, 256, [&](int64_t n0, int64_t n1) {
      for (int64_t m = 0; m < M; m++) {
        float* s0 = sums.data() + m * N;
        for (int64_t t = 1; t < parts; t++) {
          const float* st = sums.data() + (t * M + m) * N;
          for (int64_t n = n0; n < n1; n++) s0[n] += st[n];
        }
        gemm::epilogue_row(s0 + n0, n1 - n0, bias ? advance(bias, dt, n0) : nullptr, dt, act,
                           out + m * N + n0);
      }
    });
    return;
  }
  auto cols = [&](int64_t n0, int64_t n1) {
    const int64_t w = n1 - n0;
    std::vector<float> acc(size_t(M * w), 0.f);  // [M][w]
#if IGNIS_X86
    if (avx2 && transpose_b) gemv_t_avx2(M, K, af, b + n0 * K, w, acc.data());
    else
#endif
    if (transpose_b) gemv_t_scalar(M, K, af, b + n0 * K, w, acc.data());
    else nt(0, K, n0, w, acc.data());
    for (int64_t m = 0; m < M; m++)
      gemm::epilogue_row(acc.data() + m * w, w, bias ? advance(bias, dt, n0) : nullptr, dt, act,
                         out + m * N + n0);
  };
  // At least ~64K multiply-adds per chunk, so tiny products stay on one thread.
  const int64_t grain = std::max<int64_t>(16, (int64_t(1) << 16) / std::max<int64_t>(1, M * K));
  if (pool && N > grain) pool->parallel_for(N, grain, cols);
  else cols(0, N);
}

// One [M, K] @ B product; pool null when the caller already runs batches in parallel.
template <class T>
void matmul_one(ThreadPool* pool, int64_t M, int64_t N, int64_t K, const T* a, const T* b,
                bool transpose_b, const void* bias, Activation act, T* out, DType dt) {
  if (M <= 8) {
    matmul_small_m(pool, M, N, K, a, b, transpose_b, bias, act, out, dt);
    return;
  }
  DenseB ctx{b, transpose_b ? K : N};
  gemm::Problem p;
  p.M = M, p.N = N, p.K = K;
  p.a = a, p.a_type = dt;
  p.pack_b = transpose_b ? pack_b_t<T> : pack_b_nt<T>;
  p.b_ctx = &ctx;
  p.bias = bias, p.act = act;
  p.out = out, p.out_type = dt;
  gemm::run(pool, p);
}

// Offsets (in elements) of the matrices of t [tb..., R, C] for every batch index of out
// [ob..., *, *], numpy broadcasting (t's batch dims right-aligned, size-1 dims repeat).
std::vector<int64_t> batch_offsets(const Shape& out, const Shape& t) {
  const int ob = int(out.size()) - 2, tb = int(t.size()) - 2;
  int64_t nb = 1;
  for (int d = 0; d < ob; d++) nb *= out[size_t(d)];
  std::vector<int64_t> stride(size_t(std::max(ob, 0)), 0);
  int64_t s = t[t.size() - 2] * t[t.size() - 1];
  for (int d = tb - 1; d >= 0; d--) {
    stride[size_t(d + ob - tb)] = t[size_t(d)] == 1 ? 0 : s;
    s *= t[size_t(d)];
  }
  std::vector<int64_t> off(static_cast<size_t>(nb)), idx(static_cast<size_t>(std::max(ob, 0)), 0);
  int64_t cur = 0;
  for (int64_t i = 0; i < nb; i++) {
    off[size_t(i)] = cur;
    for (int d = ob - 1; d >= 0; d--) {
      cur += stride[size_t(d)];
      if (++idx[size_t(d)] < out[size_t(d)]) break;
      cur -= stride[size_t(d)] * idx[size_t(d)];
      idx[size_t(d)] = 0;
    }
  }
  return off;
}

}  // namespace

void matmul(ThreadPool& pool, const Tensor& out, const Tensor& a, const Tensor& b,
            const Tensor* bias, const MatmulParams& p) {
  const DType dt = out.dtype;
  const int64_t M = a.dim(-2), K = a.dim(-1), N = out.dim(-1);
  const int64_t nbatch = out.numel() / std::max<int64_t>(1, M * N);
  if (out.numel() == 0) return;
  const void* biasp = bias ? bias->raw() : nullptr;
  if (K == 0) {  // empty sum: out = act(bias or 0)
    std::vector<float> zeros(size_t(N), 0.f);
    for (int64_t r = 0; r < nbatch * M; r++)
      gemm::epilogue_row(zeros.data(), N, biasp, dt, p.activation, advance(out.raw(), dt, r * N));
    return;
  }
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* op = out.data<T>();
    if (b.numel() == K * N) {
      // One B for every batch: a's batches are just more rows (a's batch shape is out's).
      matmul_one<T>(&pool, nbatch * M, N, K, ap, bp, p.transpose_b, biasp, p.activation, op, dt);
      return;
    }
    const std::vector<int64_t> aoff = batch_offsets(out.shape, a.shape);
    const std::vector<int64_t> boff = batch_offsets(out.shape, b.shape);
    auto one = [&](int64_t i, ThreadPool* pl) {
      matmul_one<T>(pl, M, N, K, ap + aoff[size_t(i)], bp + boff[size_t(i)], p.transpose_b, biasp,
                    p.activation, op + i * M * N, dt);
    };
    // Many or small products: one product per thread; otherwise each product uses the pool.
    const int64_t threads = pool.size();
    const double flops = 2.0 * double(M) * double(N) * double(K);
    if (threads > 1 && nbatch >= threads &&
        (flops < 4e6 || nbatch % threads == 0 || nbatch >= 4 * threads)) {
      pool.parallel_for(nbatch, 1, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; i++) one(i, nullptr);
      });
    } else {
      for (int64_t i = 0; i < nbatch; i++) one(i, &pool);
    }
  });
}

void pack_weight(ThreadPool& pool, const Tensor& out, const Tensor& b, bool transpose_b) {
  const int64_t K = transpose_b ? b.dim(1) : b.dim(0), N = transpose_b ? b.dim(0) : b.dim(1);
  const int64_t npanel = out.dim(0);
  if (K == 0 || npanel == 0) return;
  DenseB ctx{b.raw(), transpose_b ? K : N};
  float* dst = out.data<float>();
  dispatch_float(b.dtype, [&](auto tag) {
    using T = decltype(tag);
    const gemm::PackB pack = transpose_b ? pack_b_t<T> : pack_b_nt<T>;
    // One panel (all of K) per item: panel q = columns [16q, 16q + 16) as [K][16].
    pool.parallel_for(npanel, 1, [&](int64_t s, int64_t e) {
      for (int64_t q = s; q < e; q++)
        pack(&ctx, 0, K, q * kNR, std::min(kNR, N - q * kNR), dst + q * K * kNR);
    });
  });
}

void matmul_packed(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& packed,
                   const Tensor* bias, Activation act) {
  const int64_t K = packed.dim(1), N = out.dim(-1);
  if (out.numel() == 0) return;
  const int64_t M = out.numel() / N;
  const void* biasp = bias ? bias->raw() : nullptr;
  if (K == 0) {
    std::vector<float> zeros(size_t(N), 0.f);
    for (int64_t r = 0; r < M; r++)
      gemm::epilogue_row(zeros.data(), N, biasp, out.dtype, act, advance(out.raw(), out.dtype, r * N));
    return;
  }
  gemm::Problem p;
  p.M = M, p.N = N, p.K = K;
  p.a = x.raw(), p.a_type = x.dtype;
  p.b_packed = packed.data<float>();
  p.bias = biasp, p.act = act;
  p.out = out.raw(), p.out_type = out.dtype;
  gemm::run(&pool, p);
}

}  // namespace ignis::cpu
