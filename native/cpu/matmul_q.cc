// matmul_q: x @ an int8 weight q [N, K] with per-group scales (core/quant.h; f32 or f16)
// transposed, without ever making an f32 copy of the weight: M <= 8 (decode) streams each int8
// row once and converts it in registers; larger M dequantizes L2-sized tiles for the GEMM engine
// (gemm.cc).
// With int8 activations (quantize_x) every product is an integer one, at any M: on AMX from 2
// rows (up to 16 with the weight read as stored, above with packed chunks), with AVX-512 VNNI
// alone from 9 rows, and the decode kernels over all rows elsewhere.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace ignis::cpu {
namespace {

using gemm::advance;
using gemm::kNR;

// The weight's scales [N, G], f32 or f16. The kernels read f32: rows() gives rows [n0, n0 + nr)
// as f32, in place, or converted into buf (f16: a block's rows at a time, from L1 after).
// groups(): the same with only groups [g0, g1) of each row filled (the rest of buf unset).
struct Scales {
  const void* p;
  DType dt;
  int64_t G;
  const float* rows(int64_t n0, int64_t nr, std::vector<float>& buf) const { return groups(n0, nr, 0, G, buf); }
  const float* groups(int64_t n0, int64_t nr, int64_t g0, int64_t g1, std::vector<float>& buf) const {
    if (dt == DType::f32) return static_cast<const float*>(p) + n0 * G;
    buf.resize(size_t(nr * G));
    const uint16_t* h = static_cast<const uint16_t*>(p) + n0 * G;
    if (g0 == 0 && g1 == G) convert_to_f32(h, DType::f16, buf.data(), size_t(nr * G));
    else
      for (int64_t r = 0; r < nr; r++) convert_to_f32(h + r * G + g0, DType::f16, buf.data() + r * G + g0, size_t(g1 - g0));
    return buf.data();
  }
};

// The weight as the GEMM engine's packer sees it: B [K, N] = dequant(q [N, K])^T.
struct QuantB {
  const int8_t* q;
  Scales scales;
  int64_t K, group;
};

// Panel rows [0, nr) of q (row stride K) with their scales sc [nr, G], K range [k0, k0 + kc).
void pack_b_q_panel(const int8_t* q, const float* sc, int64_t K, int64_t group, int64_t k0, int64_t kc, int64_t nr,
                    float* dst) {
  const int64_t G = K / group;
  for (int64_t c = 0; c < nr; c++) {
    const int8_t* row = q + c * K;
    const float* sr = sc + c * G;
    for (int64_t k = k0; k < k0 + kc;) {
      const int64_t g = k / group, kend = std::min(k0 + kc, (g + 1) * group);
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
IGNIS_AVX2 void pack_b_q_panel_avx2(const int8_t* q, const float* sc, int64_t K, int64_t group, int64_t k0,
                                    int64_t kc, float* dst) {
  const int64_t G = K / group;
  int64_t k = k0;
  while (k < k0 + kc) {
    const int64_t g = k / group, gend = std::min(k0 + kc, (g + 1) * group);
    for (; k + 8 <= gend; k += 8)
      for (int h = 0; h < 2; h++) {  // rows 8h .. 8h + 7 of the panel
        __m256 r[8];
        for (int i = 0; i < 8; i++) {
          const int64_t c = 8 * h + i;
          r[i] = _mm256_mul_ps(load8_i8(q + c * K + k), _mm256_broadcast_ss(sc + c * G + g));
        }
        transpose8_store(r, dst + (k - k0) * kNR + 8 * h, kNR);
      }
    for (; k < gend; k++)
      for (int64_t c = 0; c < kNR; c++) dst[(k - k0) * kNR + c] = float(q[c * K + k]) * sc[c * G + g];
  }
}
#endif

void pack_b_q(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  const auto& d = *static_cast<const QuantB*>(ctx);
  const int64_t G = d.K / d.group;
  thread_local std::vector<float> buf;
  // rows [j0, j0 + n), the groups of K range [k0, k0 + kc)
  const float* sc = d.scales.groups(j0, n, k0 / d.group, (k0 + kc - 1) / d.group + 1, buf);
  for (int64_t j = 0; j < n; j += kNR) {
    float* panel = dst + (j / kNR) * kc * kNR;
    const int8_t* q = d.q + (j0 + j) * d.K;
#if IGNIS_X86
    if (n - j >= kNR && has_avx2()) {
      pack_b_q_panel_avx2(q, sc + j * G, d.K, d.group, k0, kc, panel);
      continue;
    }
#endif
    pack_b_q_panel(q, sc + j * G, d.K, d.group, k0, kc, std::min(kNR, n - j), panel);
  }
}

// acc [M][w] = x [M, K] @ dequant(q rows [0, w))^T. Per group: dot (x, q, group elements), the
// group's sum of x * q, times the scale.
template <class GroupDot>
void qgemv_rows(int64_t M, int64_t K, int64_t group, const float* x, const int8_t* q, const float* scales, int64_t w,
                float* acc, GroupDot dot) {
  const int64_t G = K / group;
  for (int64_t n = 0; n < w; n++) {
    const int8_t* qn = q + n * K;
    for (int64_t m = 0; m < M; m++) {
      const float* xm = x + m * K;
      float tot = 0.f;
      for (int64_t g = 0; g < G; g++) tot += dot(xm + g * group, qn + g * group, group) * scales[n * G + g];
      acc[m * w + n] = tot;
    }
  }
}

void qgemv_scalar(int64_t M, int64_t K, int64_t group, const float* x, const int8_t* q, const float* scales, int64_t w,
                  float* acc) {
  qgemv_rows(M, K, group, x, q, scales, w, acc, [](const float* xg, const int8_t* qg, int64_t n) {
    float s = 0.f;
    for (int64_t k = 0; k < n; k++) s += xg[k] * float(qg[k]);
    return s;
  });
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

// ---- int8 activations: integer dot products (quantize_x) ---------------------------------------

// acc [M][w] = sum over groups of (s_w s_x) times the exact integer sum of q_w q_x.
void qgemv_i8_scalar(int64_t M, int64_t K, int64_t group, const int8_t* xq, const float* xs, const int8_t* q,
                     const float* scales, int64_t w, float* acc) {
  const int64_t G = K / group;
  for (int64_t n = 0; n < w; n++)
    for (int64_t m = 0; m < M; m++) {
      float tot = 0.f;
      for (int64_t g = 0; g < G; g++) {
        int32_t is = 0;
        for (int64_t k = g * group; k < (g + 1) * group; k++) is += int32_t(q[n * K + k]) * int32_t(xq[m * K + k]);
        tot += float(is) * (scales[n * G + g] * xs[m * G + g]);
      }
      acc[m * w + n] = tot;
    }
}

#if IGNIS_X86
// 32 products q_w q_x summed in pairs, then quads, into 8 int32 lanes: |x| (unsigned) times
// q_w with x's sign (so u8 x s8), as vpmaddubsw + vpmaddwd (AVX2) or vpdpbusd (VNNI). |q| <= 127
// keeps every pair sum below 2^15.
IGNIS_AVX2 inline __m256i dot32_avx2(__m256i acc, __m256i ax, __m256i sw) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), _mm256_set1_epi16(1)));
}
IGNIS_VNNI inline __m256i dot32_vnni(__m256i acc, __m256i ax, __m256i sw) { return _mm256_dpbusd_epi32(acc, ax, sw); }

// The integer GEMV twice, once per instruction set (a function's target cannot follow a template
// parameter, and the AVX2 copy must hold no AVX-512 instruction): SUFFIX names the copy, ATTR
// its target, DOT its dot32.
//
// qdot_i8_tile: out [MM][R] (row stride ldo) = the quantized x [MM, K] (xq, xs) against
// q [R, K], s [R, G]. Each group's integer sums (8 lanes) are scaled by s_w s_x into f32 lanes;
// a group's elements past its last multiple of 32 (a per-channel group of odd width) are summed
// one by one. qgemv_i8: acc [M][w] in L2-sized blocks of q rows, as qgemv_avx2.
#define IGNIS_QGEMV_I8(SUFFIX, ATTR, DOT)                                                                          \
  template <int MM, int R>                                                                                          \
  ATTR inline void qdot_i8_tile_##SUFFIX(int64_t K, int64_t group, const int8_t* xq, const float* xs,               \
                                         const int8_t* q, const float* s, float* out, int64_t ldo) {                \
    const int64_t G = K / group, g32 = group / 32 * 32;                                                             \
    __m256 tot[MM][R];                                                                                              \
    float tail[MM][R] = {};                                                                                         \
    for (int m = 0; m < MM; m++)                                                                                    \
      for (int r = 0; r < R; r++) tot[m][r] = _mm256_setzero_ps();                                                  \
    for (int64_t g = 0; g < G; g++) {                                                                               \
      const int64_t k0 = g * group;                                                                                 \
      {                                                                                                             \
        const int64_t a = k0 + kPrefetchBytes, row = a / K * R, off = a % K;                                        \
        for (int r = 0; r < R; r++)                                                                                 \
          for (int64_t o = 0; o < group; o += 64)                                                                   \
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(q) + uintptr_t((row + r) * K + off + o)), \
                         _MM_HINT_T0);                                                                              \
      }                                                                                                             \
      __m256i is[MM][R];                                                                                            \
      for (int m = 0; m < MM; m++)                                                                                  \
        for (int r = 0; r < R; r++) is[m][r] = _mm256_setzero_si256();                                              \
      for (int64_t k = k0; k < k0 + g32; k += 32) {                                                                 \
        __m256i xv[MM], ax[MM];                                                                                     \
        for (int m = 0; m < MM; m++) {                                                                              \
          xv[m] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + m * K + k));                             \
          ax[m] = _mm256_abs_epi8(xv[m]);                                                                           \
        }                                                                                                           \
        for (int r = 0; r < R; r++) {                                                                               \
          const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + r * K + k));                   \
          for (int m = 0; m < MM; m++) is[m][r] = DOT(is[m][r], ax[m], _mm256_sign_epi8(wv, xv[m]));                \
        }                                                                                                           \
      }                                                                                                             \
      for (int m = 0; m < MM; m++)                                                                                  \
        for (int r = 0; r < R; r++) {                                                                               \
          const float sc = s[r * G + g] * xs[m * G + g];                                                            \
          int32_t t = 0;                                                                                            \
          for (int64_t k = k0 + g32; k < k0 + group; k++) t += int32_t(q[r * K + k]) * int32_t(xq[m * K + k]);      \
          tot[m][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[m][r]), _mm256_set1_ps(sc), tot[m][r]);                 \
          tail[m][r] += float(t) * sc;                                                                              \
        }                                                                                                           \
    }                                                                                                               \
    for (int m = 0; m < MM; m++)                                                                                    \
      for (int r = 0; r < R; r++) out[m * ldo + r] = hsum8(tot[m][r]) + tail[m][r];                                 \
  }                                                                                                                 \
  ATTR void qgemv_i8_##SUFFIX(int64_t M, int64_t K, int64_t group, const int8_t* xq, const float* xs,               \
                              const int8_t* q, const float* scales, int64_t w, float* acc) {                        \
    const int64_t G = K / group;                                                                                    \
    const int64_t nb = std::max<int64_t>(4, (int64_t(65536) / K) / 4 * 4);                                          \
    for (int64_t n0 = 0; n0 < w; n0 += nb) {                                                                        \
      const int64_t bw = std::min(nb, w - n0);                                                                      \
      const int8_t* qn = q + n0 * K;                                                                                \
      const float* sn = scales + n0 * G;                                                                            \
      for (int64_t m = 0; m < M;) {                                                                                 \
        const int64_t mm = std::min<int64_t>(3, M - m);                                                             \
        const int8_t* xm = xq + m * K;                                                                              \
        const float* sm = xs + m * G;                                                                               \
        float* o = acc + m * w + n0;                                                                                \
        int64_t n = 0;                                                                                              \
        if (mm == 1)                                                                                                \
          for (; n + 4 <= bw; n += 4) qdot_i8_tile_##SUFFIX<1, 4>(K, group, xm, sm, qn + n * K, sn + n * G, o + n, w); \
        else if (mm == 2)                                                                                           \
          for (; n + 2 <= bw; n += 2) qdot_i8_tile_##SUFFIX<2, 2>(K, group, xm, sm, qn + n * K, sn + n * G, o + n, w); \
        for (; n < bw; n++) {                                                                                       \
          if (mm == 1) qdot_i8_tile_##SUFFIX<1, 1>(K, group, xm, sm, qn + n * K, sn + n * G, o + n, w);             \
          else if (mm == 2) qdot_i8_tile_##SUFFIX<2, 1>(K, group, xm, sm, qn + n * K, sn + n * G, o + n, w);        \
          else qdot_i8_tile_##SUFFIX<3, 1>(K, group, xm, sm, qn + n * K, sn + n * G, o + n, w);                     \
        }                                                                                                           \
        m += mm;                                                                                                    \
      }                                                                                                             \
    }                                                                                                               \
  }

// One row of int8 activations (decode at batch 1) on 512-bit VNNI: 64 weights a step, no
// horizontal sum until a row ends. The row's |x| (u8) and sign bits are taken once per call, so
// that each weight needs only its sign flipped where x is negative (a masked subtract) before
// vpdpbusd; the int32 lanes of a step (8 a group of 32, or all 16 of one group) are scaled in f32
// by s_w s_x: x's scales expanded to the lanes once per call (sxe [K / 64][16]), a row's two
// group scales spread to the two half-vectors. For K a multiple of 64 and groups of 32 or a
// multiple of 64.
struct XRow {
  const uint8_t* ax;    // [K] |x|
  const uint64_t* neg;  // [K / 64] bit j of word c: x[64 c + j] < 0
  const float* sxe;     // [K / 64][16] x's scale of lane l's group
};

// XRow's |x| and sign bits of xq [K] (K a multiple of 64), 64 at a time.
IGNIS_AVX512 void xrow_signs(const int8_t* xq, int64_t K, uint8_t* ax, uint64_t* neg) {
  for (int64_t c = 0; c < K / 64; c++) {
    const __m512i v = _mm512_loadu_si512(xq + c * 64);
    _mm512_storeu_si512(ax + c * 64, _mm512_abs_epi8(v));  // |x| <= 127
    neg[c] = _cvtmask64_u64(_mm512_movepi8_mask(v));
  }
}

// How far ahead of its loads each of a tile's weight streams is prefetched, in bytes: measured
// here, 1-4 KB alike; none is 9% slower.
constexpr int64_t kRowPrefetch = 2048;

// A stored scale as f32 (an f16 one widened).
IGNIS_AVX512 inline float scale_f32(float s) { return s; }
IGNIS_AVX512 inline float scale_f32(uint16_t h) { return _cvtsh_ss(h); }

// The sum of v's 16 lanes, through memory (GCC 12's -Wmaybe-uninitialized flags the 512-bit
// reductions).
IGNIS_AVX512 inline float hsum16(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  return hsum8(_mm256_add_ps(_mm256_load_ps(t), _mm256_load_ps(t + 8)));
}

// out[r * rs], r < R = the row against weight rows r * rs (q: row stride K; s: the rows' scales,
// f32 or f16 (S = uint16_t), row stride G). A tile's rows lie rs rows apart, so that tile after
// tile each of its R streams reads on through contiguous memory (see qgemv_i8_row512).
template <int R, class S>
IGNIS_AVX512_VNNI void qrow_tile(int64_t K, int64_t group, const XRow& x, const int8_t* q, const S* s, int64_t rs,
                                 float* out) {
  const int64_t G = K / group, C = K / 64;
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512 tot[R];
  for (int r = 0; r < R; r++) tot[r] = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c++) {
    // prefetch never faults, so a look past the weight's end is harmless
    for (int r = 0; r < R; r++)
      _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(q) + uintptr_t(r * rs * K + c * 64 + kRowPrefetch)),
                   _MM_HINT_T0);
    const __m512i a = _mm512_loadu_si512(x.ax + c * 64);
    const __mmask64 neg = _cvtu64_mask64(x.neg[c]);
    const __m512 sx = _mm512_loadu_ps(x.sxe + c * 16);
    for (int r = 0; r < R; r++) {
      __m512i wv = _mm512_loadu_si512(q + r * rs * K + c * 64);
      wv = _mm512_mask_sub_epi8(wv, neg, _mm512_setzero_si512(), wv);
      const __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), a, wv);
      const S* sr = s + r * rs * G;
      __m512 sw;
      if (group == 32) {  // the step's two groups' scales, lanes 0-7 and 8-15
        __m128 two;
        if constexpr (std::is_same_v<S, float>) two = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sr + 2 * c)));
        else {
          uint32_t bits;
          std::memcpy(&bits, sr + 2 * c, 4);
          two = _mm_cvtph_ps(_mm_cvtsi32_si128(int(bits)));
        }
        sw = _mm512_maskz_permutexvar_ps(0xffff, halves, _mm512_zextps128_ps512(two));
      } else {
        sw = _mm512_set1_ps(scale_f32(sr[c * 64 / group]));
      }
      tot[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, is), _mm512_mul_ps(sw, sx), tot[r]);
    }
  }
  // (the masked permute above: GCC 12's -Wmaybe-uninitialized flags the unmasked one)
  for (int r = 0; r < R; r++) out[r * rs] = hsum16(tot[r]);
}

// acc [w] = the row against q rows [0, w), four streams at once: tile i takes rows i, i + w/4,
// i + w/2 and i + 3w/4, so each stream runs through a quarter of the rows in order (one row's end
// is the next one's start). Tiles of four adjacent rows, as before, read 4 short runs 2 KB apart
// (K = 2048) that start over at every tile: the hardware prefetchers keep fewer lines in flight,
// and a model's decode step took ~17% longer (one thread and two).
template <class S>
IGNIS_AVX512_VNNI void qgemv_i8_row512(int64_t K, int64_t group, const XRow& x, const int8_t* q, const S* scales,
                                       int64_t w, float* acc) {
  const int64_t G = K / group, Q = w / 4;
  for (int64_t i = 0; i < Q; i++) qrow_tile<4>(K, group, x, q + i * K, scales + i * G, Q, acc + i);
  for (int64_t n = 4 * Q; n < w; n++) qrow_tile<1>(K, group, x, q + n * K, scales + n * G, 1, acc + n);
}

// f32 activations (the exact mode) at batch 1 on AVX-512: out[r * rs], r < R = x [K] against
// weight rows r * rs (scales f32 or f16, S = uint16_t), 16 weights a step widened to f32 against
// x, a group's sums then times its scale. For K and the group multiples of 16.
template <int R, class S>
IGNIS_AVX512 void qrow_f32_tile(int64_t K, int64_t group, const float* x, const int8_t* q, const S* s, int64_t rs,
                                float* out) {
  const int64_t G = K / group;
  __m512 tot[R];
  for (int r = 0; r < R; r++) tot[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    __m512 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t k = g * group; k < (g + 1) * group; k += 16) {
      if (k % 64 == 0)  // a line a stream (prefetch never faults: a look past the end is harmless)
        for (int r = 0; r < R; r++)
          _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(q) + uintptr_t(r * rs * K + k + kRowPrefetch)),
                       _MM_HINT_T0);
      const __m512 xv = _mm512_loadu_ps(x + k);
      for (int r = 0; r < R; r++) {
        const __m128i w8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + r * rs * K + k));
        // (masked: GCC 12's -Wmaybe-uninitialized flags the unmasked widenings)
        acc[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, w8)), xv, acc[r]);
      }
    }
    for (int r = 0; r < R; r++) tot[r] = _mm512_fmadd_ps(acc[r], _mm512_set1_ps(scale_f32(s[r * rs * G + g])), tot[r]);
  }
  for (int r = 0; r < R; r++) out[r * rs] = hsum16(tot[r]);
}

// acc [w] = x [K] against q rows [0, w): four long streams, as qgemv_i8_row512.
template <class S>
IGNIS_AVX512 void qgemv_f32_row512(int64_t K, int64_t group, const float* x, const int8_t* q, const S* scales,
                                   int64_t w, float* acc) {
  const int64_t G = K / group, Q = w / 4;
  for (int64_t i = 0; i < Q; i++) qrow_f32_tile<4>(K, group, x, q + i * K, scales + i * G, Q, acc + i);
  for (int64_t n = 4 * Q; n < w; n++) qrow_f32_tile<1>(K, group, x, q + n * K, scales + n * G, 1, acc + n);
}

IGNIS_QGEMV_I8(avx2, IGNIS_AVX2, dot32_avx2)
IGNIS_QGEMV_I8(vnni, IGNIS_VNNI, dot32_vnni)
#undef IGNIS_QGEMV_I8
#endif


#if IGNIS_ARM64
// ---- AArch64 NEON: the int8 GEMVs (decode, and int8 activations at any M) -----------------------

// qgemv_scalar on NEON: each 16 weights of a group widened to f32 in registers against x, four
// sums; elements past the group's last multiple of 16 (a per-channel group of odd width) one by one.
void qgemv_neon(int64_t M, int64_t K, int64_t group, const float* x, const int8_t* q, const float* scales, int64_t w,
                float* acc) {
  qgemv_rows(M, K, group, x, q, scales, w, acc, [](const float* xg, const int8_t* qg, int64_t n) {
    float32x4_t s[4] = {vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f)};
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
      const int8x16_t v = vld1q_s8(qg + k);
      const int16x8_t h[2] = {vmovl_s8(vget_low_s8(v)), vmovl_s8(vget_high_s8(v))};
      for (int i = 0; i < 4; i++) {
        const int32x4_t wi = vmovl_s16(i % 2 ? vget_high_s16(h[i / 2]) : vget_low_s16(h[i / 2]));
        s[i] = vfmaq_f32(s[i], vld1q_f32(xg + k + 4 * i), vcvtq_f32_s32(wi));
      }
    }
    float t = vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3])));
    for (; k < n; k++) t += xg[k] * float(qg[k]);
    return t;
  });
}

// The integer GEMV twice (a function's target cannot follow a template parameter): SUFFIX names
// the copy, ATTR its target, DOT its 16-product step (sdot, or the baseline smull + sadalp: each
// product of two values within +-127 fits 16 bits). acc [M][w] = sum over groups of (s_w s_x)
// times the integer sum of q_w q_x, as qgemv_i8_scalar.
#define IGNIS_QGEMV_I8_NEON(SUFFIX, ATTR, DOT)                                                                    \
  ATTR void qgemv_i8_##SUFFIX(int64_t M, int64_t K, int64_t group, const int8_t* xq, const float* xs,               \
                              const int8_t* q, const float* scales, int64_t w, float* acc) {                        \
    const int64_t G = K / group, g16 = group / 16 * 16;                                                             \
    for (int64_t n = 0; n < w; n++) {                                                                               \
      const int8_t* qn = q + n * K;                                                                                 \
      for (int64_t m = 0; m < M; m++) {                                                                             \
        const int8_t* xm = xq + m * K;                                                                              \
        float tot = 0.f;                                                                                            \
        for (int64_t g = 0; g < G; g++) {                                                                           \
          const int64_t k0 = g * group;                                                                             \
          int32x4_t is0 = vdupq_n_s32(0), is1 = vdupq_n_s32(0);                                                     \
          int64_t k = k0;                                                                                           \
          for (; k + 32 <= k0 + g16; k += 32) {                                                                     \
            is0 = DOT(is0, vld1q_s8(xm + k), vld1q_s8(qn + k));                                                     \
            is1 = DOT(is1, vld1q_s8(xm + k + 16), vld1q_s8(qn + k + 16));                                           \
          }                                                                                                         \
          if (k < k0 + g16) {                                                                                       \
            is0 = DOT(is0, vld1q_s8(xm + k), vld1q_s8(qn + k));                                                     \
            k += 16;                                                                                                \
          }                                                                                                         \
          int32_t t = vaddvq_s32(vaddq_s32(is0, is1));                                                              \
          for (; k < k0 + group; k++) t += int32_t(qn[k]) * int32_t(xm[k]);                                         \
          tot += float(t) * (scales[n * G + g] * xs[m * G + g]);                                                    \
        }                                                                                                           \
        acc[m * w + n] = tot;                                                                                       \
      }                                                                                                             \
    }                                                                                                               \
  }

inline int32x4_t dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
  return vpadalq_s16(vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b))), vmull_high_s8(a, b));
}
IGNIS_DOTPROD inline int32x4_t dot16_sdot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

IGNIS_QGEMV_I8_NEON(neon, , dot16_neon)
IGNIS_QGEMV_I8_NEON(sdot, IGNIS_DOTPROD, dot16_sdot)
#undef IGNIS_QGEMV_I8_NEON
#endif

// ---- M > 8 with int8 activations: an integer GEMM (AVX-512 VNNI) --------------------------------
//
// x is quantized per group as the weights are, then offset into u8 (x + 128), so that vpdpbusd
// (u8 x s8, four products a lane) takes it; each group's sums then carry 128 times the group's
// weight sum, which the accumulators start from, negated. Columns go in chunks of 32 (two
// 16-column panels): a chunk's weights are packed once, for all of K, as [K / 4][32][4] bytes (a
// 16 x 16 transpose of 4-byte words), with per group the negated offsets and the scales
// [G][32], and then serve every row tile of x from L2.
[[maybe_unused]] constexpr int64_t kQCols = gemm::kWordCols;

struct QChunk {
  int8_t* b;        // [K / 4][kQCols][4]
  int32_t* ncorr;   // [G][kQCols]: -128 * sum of the group's weights (null: not wanted, AMX)
  float* sw;        // [G][kQCols]: the weights' scales
};

#if IGNIS_X86
// Columns [j0, j0 + nr) (nr <= kQCols; the rest zero) of q [N, K] into the chunk layout.
// sc: the scales of those columns (weight rows), [nr, G].
IGNIS_AVX512_VNNI void pack_q_chunk(const int8_t* q, const float* sc, int64_t K, int64_t group, int64_t j0,
                                    int64_t nr, const QChunk& c) {
  const int64_t G = K / group;
  gemm::pack_word_chunk(reinterpret_cast<const uint32_t*>(q + j0 * K), K / 4, K / 4, nr, reinterpret_cast<uint32_t*>(c.b));
  const __m512i offset = _mm512_set1_epi8(char(0x80));
  for (int64_t g = 0; g < G; g++) {
    for (int64_t p = 0; c.ncorr && p < kQCols; p += 16) {  // the offsets, where wanted (VNNI, not AMX)
      __m512i sum = _mm512_setzero_si512();
      for (int64_t kq = g * group / 4; kq < (g + 1) * group / 4; kq++)
        sum = _mm512_dpbusd_epi32(sum, offset, _mm512_loadu_si512(c.b + (kq * kQCols + p) * 4));
      _mm512_storeu_si512(c.ncorr + g * kQCols + p, _mm512_sub_epi32(_mm512_setzero_si512(), sum));
    }
    for (int64_t r = 0; r < kQCols; r++) c.sw[g * kQCols + r] = r < nr ? sc[r * G + g] : 0.f;
  }
}

// out [R][kQCols] = the u8-offset rows xu [R, K] (row stride K) with scales xs [R, G] (row
// stride G) against a packed chunk.
template <int R>
IGNIS_AVX512_VNNI void qgemm_tile(int64_t K, int64_t group, const uint8_t* xu, const float* xs, const QChunk& c,
                                  float* out) {
  const int64_t G = K / group, gq = group / 4;
  __m512 tot[R][2];
  for (int r = 0; r < R; r++) tot[r][0] = tot[r][1] = _mm512_setzero_ps();
  const int8_t* b = c.b;
  for (int64_t g = 0; g < G; g++) {
    const __m512i n0 = _mm512_loadu_si512(c.ncorr + g * kQCols), n1 = _mm512_loadu_si512(c.ncorr + g * kQCols + 16);
    __m512i acc[R][2];
    for (int r = 0; r < R; r++) acc[r][0] = n0, acc[r][1] = n1;
    const uint8_t* xg = xu + g * group;
    for (int64_t kq = 0; kq < gq; kq++, b += kQCols * 4) {
      const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
      MATMUL_UNROLL
      for (int r = 0; r < R; r++) {
        int32_t word;
        std::memcpy(&word, xg + r * K + kq * 4, 4);
        const __m512i a = _mm512_set1_epi32(word);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, b0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, b1);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(c.sw + g * kQCols), s1 = _mm512_loadu_ps(c.sw + g * kQCols + 16);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      const __m512 x = _mm512_set1_ps(xs[r * G + g]);
      // maskz with a full mask: the unmasked form trips GCC 12's -Wmaybe-uninitialized (_mm512_undefined_ps)
      tot[r][0] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, acc[r][0]), _mm512_mul_ps(s0, x), tot[r][0]);
      tot[r][1] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, acc[r][1]), _mm512_mul_ps(s1, x), tot[r][1]);
    }
  }
  for (int r = 0; r < R; r++) {
    _mm512_storeu_ps(out + r * kQCols, tot[r][0]);
    _mm512_storeu_ps(out + r * kQCols + 16, tot[r][1]);
  }
}


// AMX: 32 rows of x at a time against the chunk's two 16-column panels, signed x signed
// (tdpbssd: x as quantized, no offset, so the chunk carries no offsets). Per group, four C tiles
// (rows 0-15 and 16-31 against each panel) start from zero and take one tdpbssd each per 64 (or
// 32) bytes of K from two A tiles and two B tiles (the packed chunk, whose layout is AMX's B
// layout): every A and B tile feeds two products. x comes packed (pack_x_amx): each A tile 16
// rows of `step` bytes in a row, where x's own rows, K bytes apart, would put a tile's 16 lines
// into two of L1's sets at K = 2048. A group's four tiles then go through memory into the f32
// sums tot [32][kQCols] (in L1), each row times the weights' scales and the row's scale, two
// groups a pass; groups g - 2 and g - 1 are scaled before group g's tiles are stored, so the
// vector work runs while the tdpbssd of g complete. The block configures the tiles and releases them itself, calling nothing
// in between: a call through the PLT may meet glibc's lazy binder, whose xsave/xrstor of the
// register state can leave the tile configuration cleared (tileloadd then faults).
constexpr int64_t kAmxRows = 32;

// bytes of K a tdpbssd takes, for groups of a multiple of 32
inline int64_t amx_step(int64_t group) { return group % 64 == 0 ? 64 : 32; }

// xp = the rows xq [Mp, K] (Mp a multiple of 16) as A tiles: [Mp / 16][K / step][16][step].
void pack_x_amx(const int8_t* xq, int64_t Mp, int64_t K, int64_t step, int8_t* xp) {
  for (int64_t b = 0; b < Mp / 16; b++)
    for (int64_t j = 0; j < K / step; j++)
      for (int64_t r = 0; r < 16; r++)
        std::memcpy(xp + ((b * (K / step) + j) * 16 + r) * step, xq + (b * 16 + r) * K + j * step, size_t(step));
}

IGNIS_AMX inline __m512 cvt_sums(const int32_t* p) { return _mm512_maskz_cvtepi32_ps(0xffff, _mm512_load_si512(p)); }

// tot [32][kQCols] += the integer sums of groups g and g + 1 (c0, c1: each four 16 x 16 tiles,
// [rows 0-15 | 16-31][panel]; c1 null: group g alone) times the weights' scales sw ([G][kQCols])
// and the rows' scales xs [32, G]. Two groups a pass halve the loads and stores of tot.
IGNIS_AMX inline void amx_scale(float* tot, const int32_t* c0, const int32_t* c1, const float* sw, const float* xs,
                                int64_t G, int64_t g) {
  const float* sw0 = sw + g * kQCols;
  const __m512 s00 = _mm512_loadu_ps(sw0), s01 = _mm512_loadu_ps(sw0 + 16);
  const __m512 s10 = c1 ? _mm512_loadu_ps(sw0 + kQCols) : s00, s11 = c1 ? _mm512_loadu_ps(sw0 + kQCols + 16) : s01;
  for (int r = 0; r < kAmxRows; r++) {
    const int64_t at = (r / 16) * 512 + (r % 16) * 16;
    float* t = tot + r * kQCols;
    const __m512 x0 = _mm512_set1_ps(xs[r * G + g]);
    __m512 t0 = _mm512_fmadd_ps(cvt_sums(c0 + at), _mm512_mul_ps(s00, x0), _mm512_load_ps(t));
    __m512 t1 = _mm512_fmadd_ps(cvt_sums(c0 + at + 256), _mm512_mul_ps(s01, x0), _mm512_load_ps(t + 16));
    if (c1) {
      const __m512 x1 = _mm512_set1_ps(xs[r * G + g + 1]);
      t0 = _mm512_fmadd_ps(cvt_sums(c1 + at), _mm512_mul_ps(s10, x1), t0);
      t1 = _mm512_fmadd_ps(cvt_sums(c1 + at + 256), _mm512_mul_ps(s11, x1), t1);
    }
    _mm512_store_ps(t, t0);
    _mm512_store_ps(t + 16, t1);
  }
}

// out [32][kQCols] (64-byte aligned) = the packed rows xp (pack_x_amx: two 16-row blocks, each
// [K / step][16][step]), scales xs [32, G] (row stride G), against the packed chunk.
IGNIS_AMX void qgemm_amx_block(int64_t K, int64_t group, const int8_t* xp, const float* xs, const QChunk& c,
                               float* out) {
  const int64_t G = K / group, step = amx_step(group);
  gemm::AmxTileConfig cfg;
  cfg.rows[0] = cfg.rows[1] = 16, cfg.colsb[0] = cfg.colsb[1] = uint16_t(step);  // A: 16 rows of x
  cfg.rows[2] = cfg.rows[3] = uint8_t(step / 4), cfg.colsb[2] = cfg.colsb[3] = 64;  // B: quads x 16 columns
  for (int t = 4; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;  // C: 16 rows x 16 int32
  _tile_loadconfig(&cfg);
  alignas(64) int32_t cbuf[3][4 * 256];  // a ring: group g's sums in cbuf[g % 3]
  for (int64_t i = 0; i < kAmxRows * kQCols; i++) out[i] = 0.f;
  constexpr int64_t kLd = kQCols * 4;  // bytes a quad-row of the chunk
  const int8_t* a1 = xp + K * 16;      // the second 16-row block
  for (int64_t g = 0; g < G; g++) {
    _tile_zero(4);
    _tile_zero(5);
    _tile_zero(6);
    _tile_zero(7);
    const int8_t* bg = c.b + (g * group / 4) * kLd;
    for (int64_t k = g * group; k < (g + 1) * group; k += step) {
      _tile_loadd(0, xp + k * 16, step);
      _tile_loadd(1, a1 + k * 16, step);
      _tile_loadd(2, bg, kLd);
      _tile_loadd(3, bg + 64, kLd);
      bg += step / 4 * kLd;
      _tile_dpbssd(4, 0, 2);
      _tile_dpbssd(5, 0, 3);
      _tile_dpbssd(6, 1, 2);
      _tile_dpbssd(7, 1, 3);
    }
    // groups g - 2 and g - 1, stored before this group's products were issued
    if (g % 2 == 0 && g >= 2) amx_scale(out, cbuf[(g - 2) % 3], cbuf[(g - 1) % 3], c.sw, xs, G, g - 2);
    int32_t* cb = cbuf[g % 3];
    _tile_stored(4, cb, 64);
    _tile_stored(5, cb + 256, 64);
    _tile_stored(6, cb + 512, 64);
    _tile_stored(7, cb + 768, 64);
  }
  // what the loop left: groups G - 2 and G - 1 (G even), or G - 1 (G odd)
  if (G % 2 == 0) amx_scale(out, cbuf[(G - 2) % 3], cbuf[(G - 1) % 3], c.sw, xs, G, G - 2);
  else amx_scale(out, cbuf[(G - 1) % 3], nullptr, c.sw, xs, G, G - 1);
  _tile_release();
}

// ---- a few rows (3-16) on AMX, the weight as the A operand: nothing packed ---------------------
//
// For a batch of decode rows the chunk packing above (a pass over the whole weight per call) costs
// more than the products. Here the weight's rows are AMX's A operand as stored (16 rows of 32 or
// 64 bytes, K bytes apart) and x the B operand, packed once per call as [K / 4][16][4] (x's rows
// as the 16 columns, zero past M): blocks of 32 weight rows (two A tiles, two C tiles of 16
// weight rows x 16 x rows), each group of 32 their tdpbssd into C tiles that start from zero,
// then through memory into f32 sums tot [32][16] times the weight row's scale and x's scales (a
// vector over x's rows), two groups a pass as qgemm_amx_block does. A last block of fewer than 32
// rows runs on a zero-padded copy, so no tile reads past the weight.
constexpr int64_t kWaRows = 32;  // weight rows a block
constexpr int64_t kWaMaxM = 16;  // x rows (B's columns)

// tot [32][16] += groups g and g + 1's sums (c0, c1: two 16 x 16 tiles each, [weight rows 0-15 |
// 16-31][x rows]; c1 null: g alone) times the weight rows' scales s ([32][G], row stride G) and
// x's scales xst ([G][16]).
IGNIS_AMX inline void wa_scale(float* tot, const int32_t* c0, const int32_t* c1, const float* s, int64_t G,
                               const float* xst, int64_t g) {
  const __m512 x0 = _mm512_loadu_ps(xst + g * kWaMaxM), x1 = c1 ? _mm512_loadu_ps(xst + (g + 1) * kWaMaxM) : x0;
  for (int r = 0; r < kWaRows; r++) {
    float* t = tot + r * kWaMaxM;
    __m512 acc = _mm512_fmadd_ps(cvt_sums(c0 + r * 16), _mm512_mul_ps(_mm512_set1_ps(s[r * G + g]), x0), _mm512_load_ps(t));
    if (c1) acc = _mm512_fmadd_ps(cvt_sums(c1 + r * 16), _mm512_mul_ps(_mm512_set1_ps(s[r * G + g + 1]), x1), acc);
    _mm512_store_ps(t, acc);
  }
}

// tot [32][16] (64-byte aligned) = weight rows q [32, K] (row stride K), scales s [32, G] (row
// stride G), against x packed as B (xb [K / 4][16][4]) with its scales xst [G][16].
IGNIS_AMX void qgemm_wa_block(int64_t K, int64_t group, const int8_t* q, const float* s, const int8_t* xb,
                              const float* xst, float* tot) {
  const int64_t G = K / group, step = amx_step(group);
  gemm::AmxTileConfig cfg;
  cfg.rows[0] = cfg.rows[1] = 16, cfg.colsb[0] = cfg.colsb[1] = uint16_t(step);  // A: 16 weight rows
  cfg.rows[2] = uint8_t(step / 4), cfg.colsb[2] = 64;                            // B: quads x 16 x rows
  cfg.rows[4] = cfg.rows[5] = 16, cfg.colsb[4] = cfg.colsb[5] = 64;              // C: 16 x 16 int32
  _tile_loadconfig(&cfg);
  alignas(64) int32_t cbuf[3][2 * 256];  // a ring: group g's sums in cbuf[g % 3]
  for (int64_t i = 0; i < kWaRows * kWaMaxM; i++) tot[i] = 0.f;
  const int8_t* q1 = q + 16 * K;
  for (int64_t g = 0; g < G; g++) {
    _tile_zero(4);
    _tile_zero(5);
    for (int64_t k = g * group; k < (g + 1) * group; k += step) {
      if ((k & 127) == 0)  // the rows' next lines, two groups ahead
        for (int r = 0; r < kWaRows; r++)
          _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(q) + uintptr_t(r * K + k + 256)), _MM_HINT_T0);
      _tile_loadd(0, q + k, K);
      _tile_loadd(1, q1 + k, K);
      _tile_loadd(2, xb + k * kWaMaxM, 64);
      _tile_dpbssd(4, 0, 2);
      _tile_dpbssd(5, 1, 2);
    }
    if (g % 2 == 0 && g >= 2) wa_scale(tot, cbuf[(g - 2) % 3], cbuf[(g - 1) % 3], s, G, xst, g - 2);
    int32_t* cb = cbuf[g % 3];
    _tile_stored(4, cb, 64);
    _tile_stored(5, cb + 256, 64);
  }
  if (G % 2 == 0) wa_scale(tot, cbuf[(G - 2) % 3], cbuf[(G - 1) % 3], s, G, xst, G - 2);
  else wa_scale(tot, cbuf[(G - 1) % 3], nullptr, s, G, xst, G - 1);
  _tile_release();
}

// out [M, N] = act(quantized x [M, K] @ dequant(q)^T + bias) for 1 <= M <= 16 on AMX, blocks of 32
// weight rows claimed by the threads.
void qgemm_amx_wa(ThreadPool& pool, int64_t M, int64_t N, int64_t K, int64_t group, const float* xf, const int8_t* q,
                  const Scales& scales, const void* bias, Activation act, void* out, DType dt) {
  const int64_t G = K / group;
  std::vector<int8_t> xq(size_t(M * K));
  std::vector<float> xs(size_t(M * G));
  for (int64_t m = 0; m < M; m++) quantize_row(xf + m * K, K, group, xq.data() + m * K, xs.data() + m * G);
  std::vector<int8_t> xb(size_t(K * kWaMaxM), 0);  // [K / 4][16][4]
  std::vector<float> xst(size_t(G * kWaMaxM), 0.f);
  for (int64_t m = 0; m < M; m++) {
    for (int64_t kq = 0; kq < K / 4; kq++) std::memcpy(xb.data() + (kq * kWaMaxM + m) * 4, xq.data() + m * K + kq * 4, 4);
    for (int64_t g = 0; g < G; g++) xst[size_t(g * kWaMaxM + m)] = xs[size_t(m * G + g)];
  }
  const bool plain = dt == DType::f32 && !bias && act == Activation::none;
  const int64_t blocks = (N + kWaRows - 1) / kWaRows;
  pool.parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    alignas(64) float tot[kWaRows * kWaMaxM];
    float row[kWaRows];
    std::vector<int8_t> qpad;
    std::vector<float> spad, sbuf;
    for (int64_t b = b0; b < b1; b++) {
      const int64_t n0 = b * kWaRows, nr = std::min(kWaRows, N - n0);
      const int8_t* qb = q + n0 * K;
      const float* sb = scales.rows(n0, nr, sbuf);
      if (nr < kWaRows) {  // the last rows, zero-padded: no tile reads past the weight
        qpad.assign(size_t(kWaRows * K), 0);
        spad.assign(size_t(kWaRows * G), 0.f);
        std::memcpy(qpad.data(), qb, size_t(nr * K));
        std::memcpy(spad.data(), sb, size_t(nr * G) * 4);
        qb = qpad.data();
        sb = spad.data();
      }
      qgemm_wa_block(K, group, qb, sb, xb.data(), xst.data(), tot);
      for (int64_t m = 0; m < M; m++) {
        for (int64_t r = 0; r < nr; r++) row[r] = tot[r * kWaMaxM + m];
        if (plain) std::memcpy(static_cast<float*>(out) + m * N + n0, row, size_t(nr) * 4);
        else gemm::epilogue_row(row, nr, bias ? advance(bias, dt, n0) : nullptr, dt, act, advance(out, dt, m * N + n0));
      }
    }
  });
}

// out [M, N] = act(quantized x [M, K] @ dequant(q)^T + bias): the chunks of 32 columns claimed
// by the threads, each packing its chunk and running every row tile against it: AMX's 32-row
// blocks where the CPU has AMX-INT8 (x signed, its rows padded to a multiple of 32 and packed as
// A tiles), else VNNI's 6-row tiles (x offset into u8).
void qgemm_vnni(ThreadPool& pool, int64_t M, int64_t N, int64_t K, int64_t group, const float* xf, const int8_t* q,
                const Scales& scales, const void* bias, Activation act, void* out, DType dt) {
  const int64_t G = K / group;
  const bool amx = has_amx_int8();
  const int64_t Mp = amx ? (M + kAmxRows - 1) / kAmxRows * kAmxRows : M;
  std::vector<int8_t> xq(size_t(Mp * K), 0);
  std::vector<float> xs(size_t(Mp * G), 0.f);
  pool.parallel_for(M, std::max<int64_t>(1, 8192 / K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      int8_t* row = xq.data() + m * K;
      quantize_row(xf + m * K, K, group, row, xs.data() + m * G);
      if (amx) continue;
      for (int64_t k = 0; k < K; k += 8) {  // x + 128, 8 bytes a step (K is a multiple of 32)
        uint64_t w;
        std::memcpy(&w, row + k, 8);
        w ^= 0x8080808080808080ull;
        std::memcpy(row + k, &w, 8);
      }
    }
  });
  const uint8_t* xu = reinterpret_cast<const uint8_t*>(xq.data());
  std::vector<int8_t> xp(amx ? size_t(Mp * K) : 0);
  if (amx) pack_x_amx(xq.data(), Mp, K, amx_step(group), xp.data());
  const int64_t chunks = (N + kQCols - 1) / kQCols;
  const bool plain = dt == DType::f32 && !bias && act == Activation::none;  // the sums are the output
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<int8_t> b(size_t(K * kQCols));
    std::vector<int32_t> ncorr(amx ? 0 : size_t(G * kQCols));
    std::vector<float> sw(size_t(G * kQCols)), sbuf;
    alignas(64) float tile[kAmxRows * kQCols];
    const QChunk c{b.data(), amx ? nullptr : ncorr.data(), sw.data()};
    using Tile = void (*)(int64_t, int64_t, const uint8_t*, const float*, const QChunk&, float*);
    constexpr Tile kTiles[gemm::kMR + 1] = {nullptr,          qgemm_tile<1>, qgemm_tile<2>, qgemm_tile<3>,
                                            qgemm_tile<4>,    qgemm_tile<5>, qgemm_tile<6>};
    const int64_t step = amx ? kAmxRows : gemm::kMR;  // rows a block (AMX) or tile (VNNI) takes
    for (int64_t ch = c0; ch < c1; ch++) {
      const int64_t j0 = ch * kQCols, nr = std::min(kQCols, N - j0);
      pack_q_chunk(q, scales.rows(j0, nr, sbuf), K, group, j0, nr, c);
      for (int64_t m = 0; m < M; m += step) {
        const int64_t rows = std::min(step, M - m);
        if (amx) qgemm_amx_block(K, group, xp.data() + m * K, xs.data() + m * G, c, tile);
        else kTiles[rows](K, group, xu + m * K, xs.data() + m * G, c, tile);
        for (int64_t r = 0; r < rows; r++) {
          if (plain) std::memcpy(static_cast<float*>(out) + (m + r) * N + j0, tile + r * kQCols, size_t(nr) * 4);
          else gemm::epilogue_row(tile + r * kQCols, nr, bias ? advance(bias, dt, j0) : nullptr, dt, act,
                                  advance(out, dt, (m + r) * N + j0));
        }
      }
    }
  });
}
#endif

}  // namespace

void matmul_q(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& q,
              const Tensor& scales, int64_t group, const Tensor* bias, Activation act, bool quantize_x) {
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
  const int64_t G = K / group;
  const Scales sc{scales.raw(), scales.dtype, G};

  if (M > 8 && !quantize_x) {
    QuantB ctx{qp, sc, K, group};
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

  std::vector<float> x32;
  const float* xf = x.data<float>();
  if (x.dtype != DType::f32) {
    x32.resize(size_t(M * K));
    convert_to_f32(x.raw(), x.dtype, x32.data(), size_t(M * K));
    xf = x32.data();
  }
#if IGNIS_X86
  // prefill with int8 activations: the integer GEMM where the CPU has AVX-512 VNNI
  // With AMX from 2 rows: up to 16 the weight as the A operand, read as stored (4096 x 8192 g32,
  // two threads: 2.6-2.8 ms for 3 to 16 rows, where the GEMV takes 4.1 at 2 rows, 6.9 at 4, 14.2
  // at 8, its cost growing with each row, and the packed chunks ~4.2 at any of them); above 16
  // the packed chunks. With VNNI alone, the integer GEMM from 9 rows.
  const int64_t min_gemm_rows = has_amx_int8() ? 2 : 9;
  if (M >= min_gemm_rows && quantize_x && group % 32 == 0 && has_avx512() && has_vnni()) {
    if (has_amx_int8() && M <= kWaMaxM) qgemm_amx_wa(pool, M, N, K, group, xf, qp, sc, biasp, act, out.raw(), dt);
    else qgemm_vnni(pool, M, N, K, group, xf, qp, sc, biasp, act, out.raw(), dt);
    return;
  }
#endif
  // M <= 8, or int8 activations without the integer GEMM (no AVX-512 VNNI, or groups not a
  // multiple of 32): each thread streams its share of q's rows once.
  // the GEMVs of this CPU: int8 activations (integer dot products) and f32 ones
  using GemvI8 = void (*)(int64_t, int64_t, int64_t, const int8_t*, const float*, const int8_t*, const float*, int64_t,
                          float*);
  using GemvF32 = void (*)(int64_t, int64_t, int64_t, const float*, const int8_t*, const float*, int64_t, float*);
  GemvI8 gemv_i8 = qgemv_i8_scalar;
  GemvF32 gemv_f32 = qgemv_scalar;
  [[maybe_unused]] const bool vnni = has_vnni();
#if IGNIS_X86
  if (vnni) gemv_i8 = qgemv_i8_vnni;
  else if (has_avx2()) gemv_i8 = qgemv_i8_avx2;
  if (has_avx2()) gemv_f32 = qgemv_avx2;
#endif
#if IGNIS_ARM64
  if (has_dotprod()) gemv_i8 = qgemv_i8_sdot;
  else if (has_neon()) gemv_i8 = qgemv_i8_neon;
  if (has_neon()) gemv_f32 = qgemv_neon;
#endif
  // int8 activations: x quantized once per call, every weight row then an integer dot product
  std::vector<int8_t> xq;
  std::vector<float> xs;
  if (quantize_x) {
    xq.resize(size_t(M * K));
    xs.resize(size_t(M * G));
    for (int64_t m = 0; m < M; m++) quantize_row(xf + m * K, K, group, xq.data() + m * K, xs.data() + m * G);  // as the weights are
  }
#if IGNIS_X86
  // batch 1 on 512-bit VNNI: the row's |x|, sign bits and lane scales once (XRow)
  const bool row512 = quantize_x && M == 1 && vnni && has_avx512() && K % 64 == 0 && (group == 32 || group % 64 == 0);
  std::vector<uint8_t> ax;
  std::vector<uint64_t> neg;
  std::vector<float> sxe;
  if (row512) {
    ax.resize(size_t(K));
    neg.resize(size_t(K / 64));
    sxe.resize(size_t(K / 64 * 16));
    xrow_signs(xq.data(), K, ax.data(), neg.data());
    for (int64_t g = 0; g < G; g++) std::fill_n(sxe.begin() + g * group / 4, group / 4, xs[size_t(g)]);
  }
  const XRow xrow{ax.data(), neg.data(), sxe.data()};
#endif
  // f16 scales: 64 rows at a time, their scales converted first (16-45 KB at K = 2048-5632, in
  // L1), except for the batch-1 VNNI kernel, which reads them as stored
  bool direct = sc.dt == DType::f32;
#if IGNIS_X86
  // batch 1, f32 activations, on AVX-512
  const bool rowf = !quantize_x && M == 1 && has_avx512() && K % 16 == 0 && group % 16 == 0;
  direct = direct || row512 || rowf;
#endif
  const int64_t block = direct ? N : 64;
  auto cols = [&](int64_t c0, int64_t c1) {
    std::vector<float> acc, sbuf;
    for (int64_t n0 = c0; n0 < c1; n0 += block) {
      const int64_t w = std::min(block, c1 - n0);
      acc.resize(size_t(M * w));  // [M][w]
#if IGNIS_X86
      if (row512 && sc.dt == DType::f16) qgemv_i8_row512(K, group, xrow, qp + n0 * K, static_cast<const uint16_t*>(sc.p) + n0 * G, w, acc.data());
      else if (row512) qgemv_i8_row512(K, group, xrow, qp + n0 * K, static_cast<const float*>(sc.p) + n0 * G, w, acc.data());
      else if (rowf && sc.dt == DType::f16) qgemv_f32_row512(K, group, xf, qp + n0 * K, static_cast<const uint16_t*>(sc.p) + n0 * G, w, acc.data());
      else if (rowf) qgemv_f32_row512(K, group, xf, qp + n0 * K, static_cast<const float*>(sc.p) + n0 * G, w, acc.data());
      else
#endif
      if (quantize_x) gemv_i8(M, K, group, xq.data(), xs.data(), qp + n0 * K, sc.rows(n0, w, sbuf), w, acc.data());
      else gemv_f32(M, K, group, xf, qp + n0 * K, sc.rows(n0, w, sbuf), w, acc.data());
      for (int64_t m = 0; m < M; m++)
        gemm::epilogue_row(acc.data() + m * w, w, biasp ? advance(biasp, dt, n0) : nullptr, dt, act,
                           advance(out.raw(), dt, m * N + n0));
    }
  };
  const int64_t grain = std::max<int64_t>(16, (int64_t(1) << 16) / (M * K));
  if (N > grain) pool.parallel_for(N, grain, cols);
  else cols(0, N);
}

}  // namespace ignis::cpu
