// matmul_q: x @ an int8 weight q [N, K] with per-group scales (core/quant.h) transposed, without
// ever making an f32 copy of the weight: M <= 8 (decode) streams each int8 row once and
// converts it in registers; larger M dequantizes L2-sized tiles for the GEMM engine (gemm.cc).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace ignis::cpu {
namespace {

using gemm::advance;
using gemm::kNR;

// The weight as the GEMM engine's packer sees it: B [K, N] = dequant(q [N, K])^T.
struct QuantB {
  const int8_t* q;
  const float* scales;  // [N, K / group]
  int64_t K, group;
};

void pack_b_q_panel(const QuantB& d, int64_t k0, int64_t kc, int64_t j0, int64_t nr, float* dst) {
  const int64_t G = d.K / d.group;
  for (int64_t c = 0; c < nr; c++) {
    const int8_t* row = d.q + (j0 + c) * d.K;
    const float* sr = d.scales + (j0 + c) * G;
    for (int64_t k = k0; k < k0 + kc;) {
      const int64_t g = k / d.group, kend = std::min(k0 + kc, (g + 1) * d.group);
      const float s = sr[g];
      for (; k < kend; k++) dst[(k - k0) * kNR + c] = float(row[k]) * s;
    }
  }
  for (int64_t c = nr; c < kNR; c++)
    for (int64_t k = 0; k < kc; k++) dst[k * kNR + c] = 0.f;
}

#if IGNIS_X86
IGNIS_AVX2 inline __m256 load8_i8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// pack_b_q_panel for a full panel (16 rows of q): 8 k at a time, each of the 16 rows' 8 weights
// converted and scaled in a register, then two 8 x 8 transposes into the panel's rows. A run of
// 8 that crosses a group boundary (a group not a multiple of 8) goes element by element.
IGNIS_AVX2 void pack_b_q_panel_avx2(const QuantB& d, int64_t k0, int64_t kc, int64_t j0, float* dst) {
  const int64_t G = d.K / d.group;
  const int8_t* q = d.q + j0 * d.K;
  const float* sc = d.scales + j0 * G;
  int64_t k = k0;
  while (k < k0 + kc) {
    const int64_t g = k / d.group, gend = std::min(k0 + kc, (g + 1) * d.group);
    for (; k + 8 <= gend; k += 8)
      for (int h = 0; h < 2; h++) {  // rows 8h .. 8h + 7 of the panel
        __m256 r[8];
        for (int i = 0; i < 8; i++) {
          const int64_t c = 8 * h + i;
          r[i] = _mm256_mul_ps(load8_i8(q + c * d.K + k), _mm256_broadcast_ss(sc + c * G + g));
        }
        transpose8_store(r, dst + (k - k0) * kNR + 8 * h, kNR);
      }
    for (; k < gend; k++)
      for (int64_t c = 0; c < kNR; c++) dst[(k - k0) * kNR + c] = float(q[c * d.K + k]) * sc[c * G + g];
  }
}
#endif

void pack_b_q(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  const auto& d = *static_cast<const QuantB*>(ctx);
  for (int64_t j = 0; j < n; j += kNR) {
    float* panel = dst + (j / kNR) * kc * kNR;
#if IGNIS_X86
    if (n - j >= kNR && has_avx2()) {
      pack_b_q_panel_avx2(d, k0, kc, j0 + j, panel);
      continue;
    }
#endif
    pack_b_q_panel(d, k0, kc, j0 + j, std::min(kNR, n - j), panel);
  }
}

// acc [M][w] = x [M, K] @ dequant(q rows [0, w))^T. Per group: sum of x * q, times the scale.
void qgemv_scalar(int64_t M, int64_t K, int64_t group, const float* x, const int8_t* q,
                  const float* scales, int64_t w, float* acc) {
  const int64_t G = K / group;
  for (int64_t n = 0; n < w; n++) {
    const int8_t* qn = q + n * K;
    for (int64_t m = 0; m < M; m++) {
      const float* xm = x + m * K;
      float tot = 0.f;
      for (int64_t g = 0; g < G; g++) {
        float s = 0.f;
        for (int64_t k = g * group; k < (g + 1) * group; k++) s += xm[k] * float(qn[k]);
        tot += s * scales[n * G + g];
      }
      acc[m * w + n] = tot;
    }
  }
}

#if IGNIS_X86
// How far ahead of the loads each weight row stream is prefetched, in bytes. A row of a 4096-wide
// weight is one 4 KB page, where the hardware prefetcher starts over, so a tile's four streams
// each begin cold; prefetching where each stream goes next (past the row's end: the same row of
// the next tile) keeps the misses in flight. Measured on Zen 3: +12% from DRAM, flat 512-16384.
constexpr int64_t kPrefetchBytes = 1024;

// out [MM][R] (row stride ldo) = x [MM, K] @ dequant(q [R, K], s [R, G])^T. 16 weights a step
// into two accumulator sets (twice the independent FMA chains); a group's sums are scaled into
// tot, which lives in L1 to leave the registers to the accumulators.
template <int MM, int R>
IGNIS_AVX2 inline void qdot_tile(int64_t K, int64_t group, const float* x, const int8_t* q,
                                 const float* s, float* out, int64_t ldo) {
  const int64_t G = K / group, g16 = group / 16 * 16, g8 = group / 8 * 8;
  alignas(32) float tot[MM][R][8] = {};
  float tail[MM][R] = {};
  for (int64_t g = 0; g < G; g++) {
    const int64_t k0 = g * group;
    {  // prefetch never faults, so the last tile's look past the weight's end is harmless
      const int64_t a = k0 + kPrefetchBytes, row = a / K * R, off = a % K;
      MATMUL_UNROLL
      for (int r = 0; r < R; r++)
        for (int64_t o = 0; o < group; o += 64)
          _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(q) + uintptr_t((row + r) * K + off + o)),
                       _MM_HINT_T0);
    }
    __m256 acc0[MM][R], acc1[MM][R];  // this group's x . q
    MATMUL_UNROLL
    for (int m = 0; m < MM; m++)
      MATMUL_UNROLL
      for (int r = 0; r < R; r++) acc0[m][r] = _mm256_setzero_ps(), acc1[m][r] = _mm256_setzero_ps();
    int64_t k = k0;
    for (; k < k0 + g16; k += 16) {
      MATMUL_UNROLL
      for (int r = 0; r < R; r++) {
        const __m256 q0 = load8_i8(q + r * K + k), q1 = load8_i8(q + r * K + k + 8);
        MATMUL_UNROLL
        for (int m = 0; m < MM; m++) {
          acc0[m][r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * K + k), q0, acc0[m][r]);
          acc1[m][r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * K + k + 8), q1, acc1[m][r]);
        }
      }
    }
    if (g8 > g16) {
      MATMUL_UNROLL
      for (int r = 0; r < R; r++) {
        const __m256 q0 = load8_i8(q + r * K + k);
        MATMUL_UNROLL
        for (int m = 0; m < MM; m++)
          acc0[m][r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * K + k), q0, acc0[m][r]);
      }
    }
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      const float sc = s[r * G + g];
      const __m256 sv = _mm256_set1_ps(sc);
      MATMUL_UNROLL
      for (int m = 0; m < MM; m++)
        _mm256_store_ps(tot[m][r], _mm256_fmadd_ps(_mm256_add_ps(acc0[m][r], acc1[m][r]), sv,
                                                   _mm256_load_ps(tot[m][r])));
      if (g8 == group) continue;
      for (int m = 0; m < MM; m++) {
        float t = 0.f;
        for (int64_t kk = k0 + g8; kk < k0 + group; kk++) t += x[m * K + kk] * float(q[r * K + kk]);
        tail[m][r] += t * sc;
      }
    }
  }
  for (int m = 0; m < MM; m++)
    for (int r = 0; r < R; r++) out[m * ldo + r] = hsum8(_mm256_load_ps(tot[m][r])) + tail[m][r];
}

template <int MM, int R>
IGNIS_AVX2 inline void qdot_rows(int64_t K, int64_t group, const float* x, const int8_t* q,
                                 const float* s, int64_t w, float* acc, int64_t ldo) {
  const int64_t G = K / group;
  int64_t n = 0;
  for (; n + R <= w; n += R) qdot_tile<MM, R>(K, group, x, q + n * K, s + n * G, acc + n, ldo);
  for (; n < w; n++) qdot_tile<MM, 1>(K, group, x, q + n * K, s + n * G, acc + n, ldo);
}

IGNIS_AVX2 void qgemv_avx2(int64_t M, int64_t K, int64_t group, const float* x, const int8_t* q,
                           const float* scales, int64_t w, float* acc) {
  // Blocks of q rows that stay in L2 while every group of x's rows passes over them, so q is
  // read from memory once.
  const int64_t G = K / group;
  const int64_t nb = std::max<int64_t>(4, (int64_t(65536) / K) / 4 * 4);
  for (int64_t n0 = 0; n0 < w; n0 += nb) {
    const int64_t bw = std::min(nb, w - n0);
    const int8_t* qn = q + n0 * K;
    const float* sn = scales + n0 * G;
    for (int64_t m = 0; m < M;) {
      const int64_t mm = std::min<int64_t>(3, M - m);
      const float* xm = x + m * K;
      float* o = acc + m * w + n0;
      switch (mm) {
        case 1: qdot_rows<1, 4>(K, group, xm, qn, sn, bw, o, w); break;
        case 2: qdot_rows<2, 2>(K, group, xm, qn, sn, bw, o, w); break;
        default: qdot_rows<3, 1>(K, group, xm, qn, sn, bw, o, w); break;
      }
      m += mm;
    }
  }
}
#endif

}  // namespace

void matmul_q(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& q,
              const Tensor& scales, int64_t group, const Tensor* bias, Activation act) {
  const DType dt = out.dtype;
  const int64_t K = x.dim(-1), N = q.dim(0);
  const int64_t M = K ? x.numel() / K : out.numel() / std::max<int64_t>(1, N);
  if (out.numel() == 0) return;
  const void* biasp = bias ? bias->raw() : nullptr;
  if (K == 0) {  // empty sum: out = act(bias or 0)
    std::vector<float> zeros(size_t(N), 0.f);
    for (int64_t r = 0; r < M; r++)
      gemm::epilogue_row(zeros.data(), N, biasp, dt, act, advance(out.raw(), dt, r * N));
    return;
  }
  const int8_t* qp = q.data<int8_t>();
  const float* sp = scales.data<float>();

  if (M > 8) {
    QuantB ctx{qp, sp, K, group};
    gemm::Problem p;
    p.M = M, p.N = N, p.K = K;
    p.a = x.raw(), p.a_type = x.dtype;
    p.pack_b = pack_b_q;
    p.b_ctx = &ctx;
    p.bias = biasp, p.act = act;
    p.out = out.raw(), p.out_type = dt;
    p.nc = 256;  // a dequantized block is KC x 256 f32 (256 KB): an L2 tile, not a weight copy
    gemm::run(&pool, p);
    return;
  }

  // M <= 8: x as f32 rows [M, K], then each thread streams its share of q's rows once.
  std::vector<float> x32;
  const float* xf = x.data<float>();
  if (x.dtype != DType::f32) {
    x32.resize(size_t(M * K));
    convert_to_f32(x.raw(), x.dtype, x32.data(), size_t(M * K));
    xf = x32.data();
  }
  const int64_t G = K / group;
  const bool avx2 = has_avx2();
  auto cols = [&](int64_t n0, int64_t n1) {
    const int64_t w = n1 - n0;
    std::vector<float> acc(size_t(M * w));  // [M][w]
#if IGNIS_X86
    if (avx2) qgemv_avx2(M, K, group, xf, qp + n0 * K, sp + n0 * G, w, acc.data());
    else
#endif
    {
      (void)avx2;
      qgemv_scalar(M, K, group, xf, qp + n0 * K, sp + n0 * G, w, acc.data());
    }
    for (int64_t m = 0; m < M; m++)
      gemm::epilogue_row(acc.data() + m * w, w, biasp ? advance(biasp, dt, n0) : nullptr, dt, act,
                         advance(out.raw(), dt, m * N + n0));
  };
  const int64_t grain = std::max<int64_t>(16, (int64_t(1) << 16) / (M * K));
  if (N > grain) pool.parallel_for(N, grain, cols);
  else cols(0, N);
}

}  // namespace ignis::cpu
