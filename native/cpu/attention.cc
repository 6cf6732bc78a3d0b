// Attention on the CPU: out = softmax(scale * Q K^T) V per (batch, head), tiled flash-style with
// an online softmax so memory stays O(tile) for any sequence length; the query heads of one KV
// head share its K/V tiles (GQA/MQA). Also kv_append, which writes new keys/values into a cache.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu.h"
#include "elementwise.h"
#include "simd.h"

namespace ignis::cpu {
namespace {

// A work item is (batch, kv head, block of rows). Its rows enumerate (query i, group head g)
// as r = i * G + g, G = Hq / Hk, so one K/V tile serves every query head that reads it.
constexpr int64_t kBlockRows = 48;  // rows per work item (fewer when there are few items)
constexpr int64_t kBlockKeys = 64;  // keys per K/V tile; a multiple of 8
// Blocks of at most this many rows read f32 K/V rows in place; larger ones copy them into
// contiguous tiles first (rows of one head are Hk * D apart, which maps them onto few L1 sets).
constexpr int64_t kDirectRows = 8;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// exp(x) for x below this is flushed to 0: its weight (< 1e-35 of the row max's) cannot show in
// f32, and products with it would be subnormal.
constexpr float kExpCut = -80.f;

// One K/V block's three steps, picked once per call: S = Q K^T, a row's online softmax, and
// O = alpha O + P V.
struct Kernels {
  void (*scores)(const float* q, int64_t ldq, const float* k, int64_t ldk, float* s, int64_t lds,
                 const int64_t* nvis, int64_t M, int64_t D);
  void (*softmax_row)(float* s, int64_t nvis, int64_t nzero, float* m, float* l, float* alpha);
  void (*pv)(const float* p, int64_t ldp, const float* v, int64_t ldv, float* o, int64_t ldo,
             const float* alpha, const int64_t* nvis, int64_t M, int64_t D);
  int64_t width;  // what they sum over: D (scalar), or Dp, zero padded (vector)
};

struct Problem {
  const char* q;  // [B, Sq, Hq, D]
  const char* k;  // [B, Skv, Hk, D]
  const char* v;  // [B, Skv, Hk, D]
  char* out;      // [B, Sq, Hq, D]
  DType dtype;
  size_t esize;
  int64_t B, Sq, Hq, Hk, G, D, Dp, Skv;
  int64_t kv_len, q_pos0;
  int64_t window;  // > 0: a row at position p sees keys (p - window, p]
  float softcap;   // > 0: scores become softcap tanh(s / softcap)
  bool causal;
  float scale;
  bool avx;
  Kernels kernels;
  bool direct_kv;  // f32, Dp == D, small blocks: K/V rows are read in place, not copied
  int64_t rows;        // Sq * G rows per (batch, kv head)
  int64_t block_rows;  // rows per work item
  int64_t block_keys;  // keys per K/V tile
};

// Per-thread tiles, allocated once per call.
struct Scratch {
  std::vector<float> q;      // [block_rows, Dp] scale * Q (zero padded to Dp)
  std::vector<float> o;      // [block_rows, Dp] unnormalized O
  std::vector<float> s;      // [block_rows, block_keys] S, then P
  std::vector<float> k, v;   // [block_keys, Dp] K and V rows as f32 (zero padded)
  std::vector<float> m, l;   // [block_rows] running max and running sum of exp
  std::vector<float> alpha;  // [block_rows] exp(m_old - m_new) of the current key block
  std::vector<int64_t> nvis; // [block_rows] keys of the current block a row sees: j < nvis
  std::vector<int64_t> lo;   // [block_rows] sliding window: and j >= lo
  std::vector<float> row;    // [Dp] one output row before conversion

  explicit Scratch(const Problem& P)
      : q(size_t(P.block_rows * P.Dp), 0.f), o(size_t(P.block_rows * P.Dp), 0.f),
        s(size_t(P.block_rows * P.block_keys), 0.f),
        k(P.direct_kv ? 0 : size_t(P.block_keys * P.Dp), 0.f),
        v(P.direct_kv ? 0 : size_t(P.block_keys * P.Dp), 0.f), m(size_t(P.block_rows)),
        l(size_t(P.block_rows)), alpha(size_t(P.block_rows)), nvis(size_t(P.block_rows)),
        lo(size_t(P.block_rows)), row(size_t(P.Dp)) {}
};

// dst [Dp] = mul * src [D] (any float dtype), zero padded.
void load_row(const void* src, DType dtype, float* dst, int64_t D, int64_t Dp, float mul) {
  convert_to_f32(src, dtype, dst, size_t(D));
  if (mul != 1.f)
    for (int64_t d = 0; d < D; d++) dst[d] *= mul;
  for (int64_t d = D; d < Dp; d++) dst[d] = 0.f;
}

// ---- scalar kernels -------------------------------------------------------------------------

// S [M, nvis] = Q [M, D] K [nvis, D]^T, row r up to its own nvis[r].
void scores_scalar(const float* q, int64_t ldq, const float* k, int64_t ldk, float* s,
                   int64_t lds, const int64_t* nvis, int64_t M, int64_t D) {
  for (int64_t r = 0; r < M; r++)
    for (int64_t j = 0; j < nvis[r]; j++) {
      float acc = 0.f;
      for (int64_t d = 0; d < D; d++) acc += q[r * ldq + d] * k[j * ldk + d];
      s[r * lds + j] = acc;
    }
}

// Online softmax step of one row: m_new = max(m, max_j s_j); P_j = exp(s_j - m_new) for
// j < nvis and 0 for nvis <= j < nzero; l = l * alpha + sum_j P_j with alpha = exp(m - m_new).
void softmax_row_scalar(float* s, int64_t nvis, int64_t nzero, float* m, float* l, float* alpha) {
  if (nvis == 0) {
    for (int64_t j = 0; j < nzero; j++) s[j] = 0.f;
    *alpha = 1.f;
    return;
  }
  float mx = *m;
  for (int64_t j = 0; j < nvis; j++) mx = std::max(mx, s[j]);
  float sum = 0.f;
  for (int64_t j = 0; j < nvis; j++) {
    float x = s[j] - mx;
    s[j] = x < kExpCut ? 0.f : std::exp(x);
    sum += s[j];
  }
  for (int64_t j = nvis; j < nzero; j++) s[j] = 0.f;
  *alpha = std::exp(*m - mx);
  *l = *l * *alpha + sum;
  *m = mx;
}

// O [M, D] = alpha * O + P [M, nvis] V [nvis, D], row r up to its own nvis[r].
void pv_scalar(const float* p, int64_t ldp, const float* v, int64_t ldv, float* o, int64_t ldo,
               const float* alpha, const int64_t* nvis, int64_t M, int64_t D) {
  for (int64_t r = 0; r < M; r++) {
    float* orow = o + r * ldo;
    if (alpha[r] != 1.f)
      for (int64_t d = 0; d < D; d++) orow[d] *= alpha[r];
    for (int64_t j = 0; j < nvis[r]; j++) {
      const float pj = p[r * ldp + j];
      const float* vrow = v + j * ldv;
      for (int64_t d = 0; d < D; d++) orow[d] += pj * vrow[d];
    }
  }
}

// ---- AVX2/FMA kernels -----------------------------------------------------------------------
#if IGNIS_X86

// dst [Dp] = mul * src [D] (any float dtype), zero padded; Dp a multiple of 8.
static IGNIS_AVX2 void load_row_avx2(const void* src, DType dtype, float* dst, int64_t D,
                                     int64_t Dp, float mul) {
  const __m256 vmul = _mm256_set1_ps(mul);
  int64_t d = 0;
  if (dtype == DType::f32) {
    const float* s = static_cast<const float*>(src);
    for (; d + 8 <= D; d += 8) _mm256_storeu_ps(dst + d, _mm256_mul_ps(_mm256_loadu_ps(s + d), vmul));
    for (; d < D; d++) dst[d] = s[d] * mul;
  } else if (dtype == DType::f16) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (; d + 8 <= D; d += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + d));
      _mm256_storeu_ps(dst + d, _mm256_mul_ps(_mm256_cvtph_ps(h), vmul));
    }
    for (; d < D; d++) dst[d] = f16_bits_to_f32(s[d]) * mul;
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (; d + 8 <= D; d += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + d));
      const __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
      _mm256_storeu_ps(dst + d, _mm256_mul_ps(_mm256_castsi256_ps(w), vmul));
    }
    for (; d < D; d++) dst[d] = bits_to_f32(uint32_t(s[d]) << 16) * mul;
  }
  for (; d < Dp; d++) dst[d] = 0.f;
}

// [sum(a), sum(b), sum(c), sum(d)]
static inline IGNIS_AVX2 __m128 hsum4_avx2(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// S [MR, NK] = Q [MR, dp] K [NK, dp]^T; dp a multiple of 8. MR x NK accumulators over d.
template <int MR, int NK>
static inline IGNIS_AVX2 void scores_tile_avx2(const float* q, int64_t ldq, const float* k,
                                               int64_t ldk, float* s, int64_t lds, int64_t dp) {
  __m256 acc[MR][4];
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_ps();
  for (int64_t d = 0; d < dp; d += 8) {
    __m256 qv[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) qv[r] = _mm256_loadu_ps(q + r * ldq + d);
#pragma GCC unroll 4
    for (int j = 0; j < NK; j++) {
      const __m256 kv = _mm256_loadu_ps(k + j * ldk + d);
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) acc[r][j] = _mm256_fmadd_ps(qv[r], kv, acc[r][j]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++) {
    const __m128 sums = hsum4_avx2(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
    if (NK == 4) {
      _mm_storeu_ps(s + r * lds, sums);
    } else {
      alignas(16) float t[4];
      _mm_store_ps(t, sums);
      for (int j = 0; j < NK; j++) s[r * lds + j] = t[j];
    }
  }
}

// S [MR, n] = Q [MR, dp] K [n, dp]^T
template <int MR>
static inline IGNIS_AVX2 void scores_rows_avx2(const float* q, int64_t ldq, const float* k,
                                               int64_t ldk, float* s, int64_t lds, int64_t n,
                                               int64_t dp) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) scores_tile_avx2<MR, 4>(q, ldq, k + j * ldk, ldk, s + j, lds, dp);
  switch (n - j) {
    case 3: scores_tile_avx2<MR, 3>(q, ldq, k + j * ldk, ldk, s + j, lds, dp); break;
    case 2: scores_tile_avx2<MR, 2>(q, ldq, k + j * ldk, ldk, s + j, lds, dp); break;
    case 1: scores_tile_avx2<MR, 1>(q, ldq, k + j * ldk, ldk, s + j, lds, dp); break;
    default: break;
  }
}

// S [M, nvis] = Q [M, dp] K [nvis, dp]^T in groups of 3 rows, each group up to the largest nvis
// of its rows (nvis is non-decreasing in r).
static IGNIS_AVX2 void scores_avx2(const float* q, int64_t ldq, const float* k, int64_t ldk,
                                   float* s, int64_t lds, const int64_t* nvis, int64_t M,
                                   int64_t dp) {
  int64_t r = 0;
  for (; r + 3 <= M; r += 3)
    scores_rows_avx2<3>(q + r * ldq, ldq, k, ldk, s + r * lds, lds, nvis[r + 2], dp);
  switch (M - r) {
    case 2: scores_rows_avx2<2>(q + r * ldq, ldq, k, ldk, s + r * lds, lds, nvis[r + 1], dp); break;
    case 1: scores_rows_avx2<1>(q + r * ldq, ldq, k, ldk, s + r * lds, lds, nvis[r], dp); break;
    default: break;
  }
}

// Online softmax step of one row (see softmax_row_scalar); s has room for nzero rounded up to 8.
static IGNIS_AVX2 void softmax_row_avx2(float* s, int64_t nvis, int64_t nzero, float* m, float* l,
                                        float* alpha) {
  const int64_t n8 = (nzero + 7) & ~int64_t(7);
  if (nvis == 0) {
    for (int64_t j = 0; j < n8; j += 8) _mm256_storeu_ps(s + j, _mm256_setzero_ps());
    *alpha = 1.f;
    return;
  }
  const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 limit = _mm256_set1_ps(float(nvis));
  __m256 vmax = _mm256_set1_ps(kNegInf);
  for (int64_t j = 0; j < nvis; j += 8) {
    const __m256 live = _mm256_cmp_ps(_mm256_add_ps(_mm256_set1_ps(float(j)), iota), limit, _CMP_LT_OQ);
    vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(vmax, _mm256_loadu_ps(s + j), live));
  }
  const float mx = std::max(*m, hmax8(vmax));
  // P = exp(S - m_new), 0 where masked
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 live = _mm256_cmp_ps(_mm256_add_ps(_mm256_set1_ps(float(j)), iota), limit, _CMP_LT_OQ);
    const __m256 p = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm)), live);
    _mm256_storeu_ps(s + j, p);
    vsum = _mm256_add_ps(vsum, p);
  }
  *alpha = std::exp(*m - mx);
  *l = *l * *alpha + hsum8(vsum);
  *m = mx;
}

// O [MR, 8 NV] = alpha * O + P [MR, n] V [n, 8 NV]
template <int MR, int NV>
static inline IGNIS_AVX2 void pv_tile_avx2(const float* p, int64_t ldp, const float* v,
                                           int64_t ldv, float* o, int64_t ldo, const float* alpha,
                                           int64_t n) {
  __m256 acc[MR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++) {
    const __m256 a = _mm256_set1_ps(alpha[r]);
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) acc[r][c] = _mm256_mul_ps(_mm256_loadu_ps(o + r * ldo + 8 * c), a);
  }
  for (int64_t j = 0; j < n; j++) {
    __m256 vv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) vv[c] = _mm256_loadu_ps(v + j * ldv + 8 * c);
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
      const __m256 pj = _mm256_broadcast_ss(p + r * ldp + j);
#pragma GCC unroll 4
      for (int c = 0; c < NV; c++) acc[r][c] = _mm256_fmadd_ps(pj, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) _mm256_storeu_ps(o + r * ldo + 8 * c, acc[r][c]);
}

// O [MR, dp] = alpha * O + P [MR, n] V [n, dp], in column chunks of 24 (16 + 16 for the last 32).
template <int MR>
static inline IGNIS_AVX2 void pv_rows_avx2(const float* p, int64_t ldp, const float* v,
                                           int64_t ldv, float* o, int64_t ldo, const float* alpha,
                                           int64_t n, int64_t dp) {
  int64_t c = 0;
  while (c < dp) {
    const int64_t left = (dp - c) / 8;
    if (left >= 3 && left != 4) {
      pv_tile_avx2<MR, 3>(p, ldp, v + c, ldv, o + c, ldo, alpha, n);
      c += 24;
    } else if (left >= 2) {
      pv_tile_avx2<MR, 2>(p, ldp, v + c, ldv, o + c, ldo, alpha, n);
      c += 16;
    } else {
      pv_tile_avx2<MR, 1>(p, ldp, v + c, ldv, o + c, ldo, alpha, n);
      c += 8;
    }
  }
}

// O [M, dp] = alpha * O + P [M, nvis] V [nvis, dp], in groups of 4 rows.
static IGNIS_AVX2 void pv_avx2(const float* p, int64_t ldp, const float* v, int64_t ldv, float* o,
                               int64_t ldo, const float* alpha, const int64_t* nvis, int64_t M,
                               int64_t dp) {
  int64_t r = 0;
  for (; r + 4 <= M; r += 4)
    pv_rows_avx2<4>(p + r * ldp, ldp, v, ldv, o + r * ldo, ldo, alpha + r, nvis[r + 3], dp);
  switch (M - r) {
    case 3: pv_rows_avx2<3>(p + r * ldp, ldp, v, ldv, o + r * ldo, ldo, alpha + r, nvis[r + 2], dp); break;
    case 2: pv_rows_avx2<2>(p + r * ldp, ldp, v, ldv, o + r * ldo, ldo, alpha + r, nvis[r + 1], dp); break;
    case 1: pv_rows_avx2<1>(p + r * ldp, ldp, v, ldv, o + r * ldo, ldo, alpha + r, nvis[r], dp); break;
    default: break;
  }
}

#endif  // IGNIS_X86

// ---- AArch64 NEON kernels ---------------------------------------------------------------------
#if IGNIS_ARM64
// S [M, nvis] = Q [M, D] K [nvis, D]^T: four keys a step share each load of Q; Dp (a multiple of
// 8, zero padded past D) is the width summed.
void scores_neon(const float* q, int64_t ldq, const float* k, int64_t ldk, float* s, int64_t lds,
                 const int64_t* nvis, int64_t M, int64_t Dp) {
  for (int64_t r = 0; r < M; r++) {
    const float* qr = q + r * ldq;
    int64_t j = 0;
    for (; j + 4 <= nvis[r]; j += 4) {
      float32x4_t a[4] = {vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f)};
      for (int64_t d = 0; d < Dp; d += 4) {
        const float32x4_t qv = vld1q_f32(qr + d);
        for (int i = 0; i < 4; i++) a[i] = vfmaq_f32(a[i], qv, vld1q_f32(k + (j + i) * ldk + d));
      }
      for (int i = 0; i < 4; i++) s[r * lds + j + i] = vaddvq_f32(a[i]);
    }
    for (; j < nvis[r]; j++) {
      float32x4_t a = vdupq_n_f32(0.f);
      for (int64_t d = 0; d < Dp; d += 4) a = vfmaq_f32(a, vld1q_f32(qr + d), vld1q_f32(k + j * ldk + d));
      s[r * lds + j] = vaddvq_f32(a);
    }
  }
}

// O [M, Dp] = alpha * O + P [M, nvis] V [nvis, Dp], four keys a step into each O chunk.
void pv_neon(const float* p, int64_t ldp, const float* v, int64_t ldv, float* o, int64_t ldo,
             const float* alpha, const int64_t* nvis, int64_t M, int64_t Dp) {
  for (int64_t r = 0; r < M; r++) {
    float* orow = o + r * ldo;
    const float* pr = p + r * ldp;
    if (alpha[r] != 1.f)
      for (int64_t d = 0; d < Dp; d += 4) vst1q_f32(orow + d, vmulq_n_f32(vld1q_f32(orow + d), alpha[r]));
    int64_t j = 0;
    for (; j + 4 <= nvis[r]; j += 4)
      for (int64_t d = 0; d < Dp; d += 4) {
        float32x4_t acc = vld1q_f32(orow + d);
        for (int i = 0; i < 4; i++) acc = vfmaq_n_f32(acc, vld1q_f32(v + (j + i) * ldv + d), pr[j + i]);
        vst1q_f32(orow + d, acc);
      }
    for (; j < nvis[r]; j++)
      for (int64_t d = 0; d < Dp; d += 4)
        vst1q_f32(orow + d, vfmaq_n_f32(vld1q_f32(orow + d), vld1q_f32(v + j * ldv + d), pr[j]));
  }
}
#endif  // IGNIS_ARM64

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

// ---- driver ---------------------------------------------------------------------------------

// One work item: rows [r0, r0 + M) of (batch b, kv head hk). Row r is query i = r / G of
// head hk * G + r % G, at absolute position q_pos0 + i.
void attention_block(const Problem& P, Scratch& w, int64_t b, int64_t hk, int64_t r0) {
  const int64_t M = std::min(P.block_rows, P.rows - r0);
  const int64_t D = P.D, Dp = P.Dp;
  auto q_offset = [&](int64_t r) {  // element offset of row r in q and out
    const int64_t i = (r0 + r) / P.G, g = (r0 + r) % P.G;
    return ((b * P.Sq + i) * P.Hq + hk * P.G + g) * D;
  };
  auto load = [&](const char* src, float* dst, float mul) {
#if IGNIS_X86
    if (P.avx) return load_row_avx2(src, P.dtype, dst, D, Dp, mul);
#endif
    load_row(src, P.dtype, dst, D, Dp, mul);
  };
  // Q [M, Dp] = scale * q rows
  for (int64_t r = 0; r < M; r++)
    load(P.q + size_t(q_offset(r)) * P.esize, &w.q[size_t(r * Dp)], P.scale);
  std::fill(w.o.begin(), w.o.begin() + M * Dp, 0.f);
  std::fill(w.m.begin(), w.m.begin() + M, kNegInf);
  std::fill(w.l.begin(), w.l.begin() + M, 0.f);

  // Causal: keys past the last row's position are seen by no row of this block; a sliding
  // window: nor keys before the first row's window.
  const int64_t pos_last = P.q_pos0 + (r0 + M - 1) / P.G;
  const int64_t kend = P.causal ? std::min(P.kv_len, pos_last + 1) : P.kv_len;
  const int64_t kbegin = P.window > 0 ? std::max<int64_t>(0, P.q_pos0 + r0 / P.G - P.window + 1) : 0;
  const int64_t ld_src = P.Hk * D;  // elements between consecutive key rows of one head
  const size_t row_bytes = size_t(D) * P.esize;
  const int64_t BK = P.block_keys;
  for (int64_t k0 = kbegin; k0 < kend; k0 += BK) {
    const int64_t nk = std::min(BK, kend - k0);
    const size_t src0 = size_t((b * P.Skv + k0) * P.Hk + hk) * size_t(D);  // element offset
    // K, V [nk, Dp]
    const float* kt;
    const float* vt;
    int64_t ldk;
    // The next block's K/V rows are one page apart or more (out of the hardware prefetcher's
    // reach): ask for them now, so they arrive while this block computes.
    if (k0 + BK < kend) {
      const size_t next0 = src0 + size_t(BK * ld_src);
      const int64_t nnext = std::min(BK, kend - k0 - BK);
      for (int64_t j = 0; j < nnext; j++) {
        const size_t off = (next0 + size_t(j * ld_src)) * P.esize;
        for (size_t c = 0; c < row_bytes; c += 64) {
          prefetch(P.k + off + c);
          prefetch(P.v + off + c);
        }
      }
    }
    if (P.direct_kv) {
      kt = reinterpret_cast<const float*>(P.k) + src0;
      vt = reinterpret_cast<const float*>(P.v) + src0;
      ldk = ld_src;
    } else {
      for (int64_t j = 0; j < nk; j++) {
        const size_t off = (src0 + size_t(j * ld_src)) * P.esize;
        load(P.k + off, &w.k[size_t(j * Dp)], 1.f);
        load(P.v + off, &w.v[size_t(j * Dp)], 1.f);
      }
      kt = w.k.data();
      vt = w.v.data();
      ldk = Dp;
    }
    // keys of this block row r sees: j < nvis[r] (and, in a window, j >= lo[r])
    bool clipped = false;
    for (int64_t r = 0; r < M; r++) {
      const int64_t pos = P.q_pos0 + (r0 + r) / P.G;
      w.nvis[size_t(r)] = P.causal ? std::clamp<int64_t>(pos + 1 - k0, 0, nk) : nk;
      w.lo[size_t(r)] = P.window > 0 ? std::clamp<int64_t>(pos - P.window + 1 - k0, 0, nk) : 0;
      if (w.lo[size_t(r)] >= w.nvis[size_t(r)]) w.nvis[size_t(r)] = 0;  // the whole block is outside
      clipped |= w.lo[size_t(r)] > 0 && w.nvis[size_t(r)] > 0;
    }
    float* s = w.s.data();
    const int64_t* nvis = w.nvis.data();
    // Soft-capped scores: cap tanh(s / cap), before the window's and the softmax. Scores of keys
    // before a row's window are -inf (weight 0): only the window's first block has any; every
    // row keeps at least one key, so its running max stays finite.
    auto clip = [&] {
      if (P.softcap > 0.f) {
        const float cap = P.softcap, inv = 1.f / P.softcap;
        for (int64_t r = 0; r < M; r++)
          for (int64_t j = 0; j < nvis[r]; j++) s[r * BK + j] = cap * std::tanh(s[r * BK + j] * inv);
      }
      if (!clipped) return;
      for (int64_t r = 0; r < M; r++)
        for (int64_t j = 0; j < std::min(w.lo[size_t(r)], nvis[r]); j++) s[r * BK + j] = kNegInf;
    };
    const Kernels& f = P.kernels;
    f.scores(w.q.data(), Dp, kt, ldk, s, BK, nvis, M, f.width);  // S = (scale Q) K^T
    clip();
    for (int64_t r = 0; r < M; r++)  // P = exp(S - m), online m, l
      f.softmax_row(s + r * BK, nvis[r], nk, &w.m[size_t(r)], &w.l[size_t(r)], &w.alpha[size_t(r)]);
    f.pv(s, BK, vt, ldk, w.o.data(), Dp, w.alpha.data(), nvis, M, f.width);  // O = a O + P V
  }

  // out = O / l (a row that saw no key has l = 0 and yields zeros)
  for (int64_t r = 0; r < M; r++) {
    const float l = w.l[size_t(r)];
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const float* orow = &w.o[size_t(r * Dp)];
    for (int64_t d = 0; d < D; d++) w.row[size_t(d)] = orow[d] * inv;
    convert_from_f32(w.row.data(), P.out + size_t(q_offset(r)) * P.esize, P.dtype, size_t(D));
  }
}

}  // namespace

void attention(ThreadPool& pool, const Tensor& out, const Tensor& q, const Tensor& k,
               const Tensor& v, const AttentionParams& p) {
  Problem P;
  P.q = static_cast<const char*>(q.raw());
  P.k = static_cast<const char*>(k.raw());
  P.v = static_cast<const char*>(v.raw());
  P.out = static_cast<char*>(out.raw());
  P.dtype = q.dtype;
  P.esize = dtype_size(q.dtype);
  P.B = q.dim(0);
  P.Sq = q.dim(1);
  P.Hq = q.dim(2);
  P.D = q.dim(3);
  P.Skv = k.dim(1);
  P.Hk = k.dim(2);
  P.G = P.Hq / P.Hk;
  P.Dp = (P.D + 7) & ~int64_t(7);
  P.kv_len = std::min(p.kv_len, P.Skv);
  P.q_pos0 = p.q_pos0;
  P.causal = p.causal;
  P.window = p.window;
  P.softcap = p.softcap;
  P.scale = p.scale;
  P.avx = has_avx2();
  // the scalar kernels sum over D, the vector ones over Dp (zero padded)
  P.kernels = {scores_scalar, softmax_row_scalar, pv_scalar, P.D};
#if IGNIS_X86
  if (P.avx) P.kernels = {scores_avx2, softmax_row_avx2, pv_avx2, P.Dp};
#endif
#if IGNIS_ARM64
  if (has_neon()) P.kernels = {scores_neon, softmax_row_scalar, pv_neon, P.Dp};
#endif
  P.rows = P.Sq * P.G;
  if (P.B == 0 || P.rows == 0 || P.D == 0) return;

  // Enough items for every thread: shrink the row block before leaving a core idle
  // (single-token decode with few kv heads).
  const int threads = pool.size();
  P.block_keys = kBlockKeys;
  P.block_rows = std::min(kBlockRows, P.rows);
  auto blocks = [&] { return (P.rows + P.block_rows - 1) / P.block_rows; };
  while (P.B * P.Hk * blocks() < threads && P.block_rows > 4)
    P.block_rows = (P.block_rows + 1) / 2;
  const int64_t nblocks = blocks();
  P.direct_kv = P.dtype == DType::f32 && P.Dp == P.D && P.block_rows <= kDirectRows;
  const int64_t items = P.B * P.Hk * nblocks;

  // Threads pull items from a shared counter, the costliest (last causal blocks) first.
  std::atomic<int64_t> next{0};
  pool.parallel_for(std::min<int64_t>(threads, items), 1, [&](int64_t, int64_t) {
    Scratch w(P);
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int64_t blk = nblocks - 1 - t % nblocks;
      const int64_t bh = t / nblocks;
      attention_block(P, w, bh / P.Hk, bh % P.Hk, blk * P.block_rows);
    }
  });
}

void kv_append(ThreadPool& pool, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k,
               const Tensor& v, int64_t position) {
  // Row (b, s) of k/v [B, S, Hk * D] goes to row (b, position + s) of the caches [B, maxSeq, Hk * D].
  const int64_t B = k.dim(0), S = k.dim(1), max_seq = cache_k.dim(1);
  const size_t row_bytes = size_t(k.dim(2) * k.dim(3)) * dtype_size(k.dtype);
  if (B == 0 || S == 0 || row_bytes == 0) return;
  const int64_t rows = B * S;
  const int64_t grain = std::max<int64_t>(1, int64_t((size_t(1) << 16) / row_bytes));
  pool.parallel_for(2 * rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      const bool is_v = t >= rows;
      const int64_t bs = is_v ? t - rows : t;
      const int64_t b = bs / S, s = bs % S;
      const char* src = static_cast<const char*>((is_v ? v : k).raw()) + size_t(bs) * row_bytes;
      char* dst = static_cast<char*>((is_v ? cache_v : cache_k).raw()) +
                  size_t(b * max_seq + position + s) * row_bytes;
      std::memcpy(dst, src, row_bytes);
    }
  });
}

}  // namespace ignis::cpu
