// matmul: out [batch..., M, N] = act(a @ b + bias) in f32/f16/bf16 with numpy batch broadcasting
// (b f16/bf16 under an f32 a: a 16-bit weight under f32 activations, out f32), and matmul_packed
// (x @ a weight pack_weight prepared). M > 8 goes to the GEMM engine (gemm.cc) with B packed by
// pack.cc's packers; M <= 8 (decode) takes a GEMV-style path that streams B once: b [K, N] split
// over K (each core reads one contiguous half), b [N, K] split over N.
#include <algorithm>
#include <atomic>
#include <tuple>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "../core/activation.h"
#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace ignis::cpu {

namespace {

using gemm::advance;
using gemm::kNR;

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

// How far ahead each of a batch-1 tile's row streams is prefetched, in bytes (f16 decode, one
// thread: 1, 2 and 4 KB measured alike; without it the streams gain half as much).
constexpr int64_t kStreamPrefetch = 2048;

// out [MM][R] (row stride ldo) = a [MM, K] @ b [R, K]^T, b's R rows rs rows apart (the outputs
// too); rows apart (rs > 1) are prefetched ahead in each.
template <int MM, int R, class T>
IGNIS_AVX2 inline void dot_tile(int64_t K, const float* a, const T* b, float* out, int64_t ldo, int64_t rs = 1) {

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
    if (rs > 1 && (k * int64_t(sizeof(T))) % 64 == 0)  // a line a stream, once per 64 bytes
      for (int r = 0; r < R; r++)
        _mm_prefetch(reinterpret_cast<const char*>(b + r * rs * K + k) + kStreamPrefetch, _MM_HINT_T0);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      const __m256 bv = load8(b + r * rs * K + k);
      MATMUL_UNROLL
      for (int m = 0; m < MM; m++) acc[m][r] = _mm256_fmadd_ps(av[m], bv, acc[m][r]);
    }
  }
  for (int m = 0; m < MM; m++) {
    for (int r = 0; r < R; r++) {
      float s = hsum8(acc[m][r]);
      for (int64_t kk = k; kk < K; kk++) s += a[m * K + kk] * to_f32(b[r * rs * K + kk]);
      out[m * ldo + r * rs] = s;
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
  if (M == 1) {
    // Batch 1 (decode): tile i takes rows i, i + w/8, ..., so that each of its 8 streams runs on
    // through an eighth of the rows in order (a row's end is the next one's start), prefetched
    // ahead. 8 adjacent rows (4 KB apart at K = 2048 f16) start over every tile, and the
    // hardware prefetchers keep fewer lines in flight: an f16 or bf16 model's decode step took
    // ~20% longer (852M Llama, 1 and 2 threads).
    const int64_t Q = w / 8;
    for (int64_t i = 0; i < Q; i++) dot_tile<1, 8>(K, a, b + i * K, acc + i, w, Q);
    for (int64_t n = 8 * Q; n < w; n++) dot_tile<1, 1>(K, a, b + n * K, acc + n, w);
    return;
  }
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

#if IGNIS_ARM64
// NEON forms of the two GEMVs above. acc [M][w] += a [M, kr] (row stride lda) @ b [kr, w] (row
// stride ldb): four rows of b a step into each chunk of acc, b widened as it loads.
template <class T>
void gemv_nt_neon(int64_t M, int64_t kr, const float* a, int64_t lda, const T* b, int64_t ldb, int64_t w,
                  float* acc) {
  const int64_t w4 = w / 4 * 4;
  int64_t k = 0;
  for (; k + 4 <= kr; k += 4) {
    const T* bk = b + k * ldb;
    for (int64_t m = 0; m < M; m++) {
      const float* am = a + m * lda + k;
      float* o = acc + m * w;
      for (int64_t j = 0; j < w4; j += 4) {
        float32x4_t u = vfmaq_n_f32(vld1q_f32(o + j), load4(bk + j), am[0]);
        u = vfmaq_n_f32(u, load4(bk + ldb + j), am[1]);
        u = vfmaq_n_f32(u, load4(bk + 2 * ldb + j), am[2]);
        vst1q_f32(o + j, vfmaq_n_f32(u, load4(bk + 3 * ldb + j), am[3]));
      }
      for (int64_t j = w4; j < w; j++)
        for (int r = 0; r < 4; r++) o[j] += am[r] * to_f32(bk[r * ldb + j]);
    }
  }
  if (k < kr) gemv_nt_scalar(M, kr - k, a + k, lda, b + k * ldb, ldb, w, acc);
}

// b [N, K] at row n0: acc [M][w] = a @ b^T, a dot product per (m, n) in four lanes.
template <class T>
void gemv_t_neon(int64_t M, int64_t K, const float* a, const T* b, int64_t w, float* acc) {
  const int64_t K8 = K / 8 * 8;
  for (int64_t n = 0; n < w; n++) {
    const T* bn = b + n * K;
    for (int64_t m = 0; m < M; m++) {
      const float* am = a + m * K;
      float32x4_t s0 = vdupq_n_f32(0.f), s1 = vdupq_n_f32(0.f);
      for (int64_t k = 0; k < K8; k += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(am + k), load4(bn + k));
        s1 = vfmaq_f32(s1, vld1q_f32(am + k + 4), load4(bn + k + 4));
      }
      float t = vaddvq_f32(vaddq_f32(s0, s1));
      for (int64_t k = K8; k < K; k++) t += am[k] * to_f32(bn[k]);
      acc[m * w + n] = t;
    }
  }
}
#endif

// out [M, N] = act(a [M, K] @ b + bias) for M <= 8, out and bias of a's dtype dt (TA), b of
// TB's. b [N, K]: columns (rows of b) split over the pool. b [K, N] with a long K: K split over
// the pool, each thread streaming its own contiguous rows of b into a private [M, N] sum, the sums
// added at the end.
template <class TA, class T>
void matmul_small_m(ThreadPool* pool, int64_t M, int64_t N, int64_t K, const TA* a, const T* b,
                    bool transpose_b, const void* bias, Activation act, TA* out, DType dt) {
  std::vector<float> a32;
  const float* af;
  if constexpr (std::is_same_v<TA, float>) {
    af = a;
  } else {
    a32.resize(size_t(M * K));
    convert_to_f32(a, dt, a32.data(), size_t(M * K));
    af = a32.data();
  }
  const bool avx2 = has_avx2();
  [[maybe_unused]] const bool neon = has_neon();
  // acc [M][w] (+)= a [M, k0:k0+kr] @ b [k0:k0+kr, n0:n0+w]
  auto nt = [&](int64_t k0, int64_t kr, int64_t n0, int64_t w, float* acc) {
#if IGNIS_X86
    if (avx2) return gemv_nt_avx2(M, kr, af + k0, K, b + k0 * N + n0, N, w, acc);
#endif
#if IGNIS_ARM64
    if (neon) return gemv_nt_neon(M, kr, af + k0, K, b + k0 * N + n0, N, w, acc);
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
#if IGNIS_ARM64
    if (neon && transpose_b) gemv_t_neon(M, K, af, b + n0 * K, w, acc.data());
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

// One [M, K] @ B product (a, out and bias of dtype dt, TA; b of dtype bt, TB); pool null when
// the caller already runs batches in parallel.
template <class TA, class T>
void matmul_one(ThreadPool* pool, int64_t M, int64_t N, int64_t K, const TA* a, const T* b,
                bool transpose_b, const void* bias, Activation act, TA* out, DType dt, DType bt) {
  if (M <= 8) {
    matmul_small_m(pool, M, N, K, a, b, transpose_b, bias, act, out, dt);
    return;
  }
  if constexpr (std::is_same_v<T, bf16>) {  // bf16 weights as pairs (AMX, AVX512_BF16)
    if (transpose_b && gemm::gemm_bf16_t(pool, M, N, K, a, dt, b, bias, act, out)) return;
  }
  gemm::DenseB ctx{b, transpose_b ? K : N};
  gemm::Problem p;
  p.M = M, p.N = N, p.K = K;
  p.a = a, p.a_type = dt;
  p.pack_b = gemm::dense_packer(bt, transpose_b);
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
  // a, out and bias share a dtype; b has it too, or is f16/bf16 under an f32 a
  auto run = [&](auto atag, auto btag) {
    using TA = decltype(atag);
    using T = decltype(btag);
    const TA* ap = a.data<TA>();
    const T* bp = b.data<T>();
    TA* op = out.data<TA>();
    const DType bt = b.dtype;
    if (b.numel() == K * N) {
      // One B for every batch: a's batches are just more rows (a's batch shape is out's).
      matmul_one<TA, T>(&pool, nbatch * M, N, K, ap, bp, p.transpose_b, biasp, p.activation, op, dt, bt);
      return;
    }
    const std::vector<int64_t> aoff = batch_offsets(out.shape, a.shape);
    const std::vector<int64_t> boff = batch_offsets(out.shape, b.shape);
    auto one = [&](int64_t i, ThreadPool* pl) {
      matmul_one<TA, T>(pl, M, N, K, ap + aoff[size_t(i)], bp + boff[size_t(i)], p.transpose_b, biasp,
                        p.activation, op + i * M * N, dt, bt);
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
  };
  if (b.dtype == dt) dispatch_float(dt, [&](auto tag) { run(tag, tag); });
  else if (b.dtype == DType::f16) run(float{}, f16{});
  else run(float{}, bf16{});
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
