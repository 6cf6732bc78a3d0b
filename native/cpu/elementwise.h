// Private helpers of the small CPU kernels (norm, activation, softmax, rope, binary, cast): a
// vector exp, a horizontal max (the 8-wide loads, stores and sum are simd.h's), and the grains
// that keep tiny tensors on the calling thread. Not part of the kernel interface.
#pragma once
#include <cstdint>
#include <limits>

#include "../core/dtype.h"
#include "simd.h"

namespace ignis::cpu {

// parallel_for grains: a chunk should be worth waking a thread for (~tens of microseconds).
inline constexpr int64_t kElementGrain = 32768;  // memory-bound elementwise work, in elements
inline constexpr int64_t kMathGrain = 8192;      // elements that each need an exp or a log
// Rows per chunk for row kernels whose rows have `n` elements.
inline int64_t row_grain(int64_t n) {
  return n >= kElementGrain ? 1 : kElementGrain / (n > 0 ? n : 1);
}

#if IGNIS_X86

static inline IGNIS_AVX2 float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// e^x, Cephes expf: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for exactness),
// e^r = 1 + r + r^2 P(r), then scaled by 2^n through the exponent bits. Max error ~2 ulp.
// x > 88.376 gives inf (e^x is finite up to 88.72, the last 0.35 is given up so 2^n never
// overflows); x < -87.34 gives 0 (no subnormal results); NaN stays NaN.
static inline IGNIS_AVX2 __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f);
  const __m256 lo = _mm256_set1_ps(-87.3365447504f);
  __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(lo, _mm256_min_ps(hi, x));  // operand order keeps a NaN x
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 e = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  __m256i pow2n =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  e = _mm256_mul_ps(e, _mm256_castsi256_ps(pow2n));
  e = _mm256_blendv_ps(e, _mm256_set1_ps(std::numeric_limits<float>::infinity()), over);
  return _mm256_andnot_ps(under, e);
}

#endif  // IGNIS_X86

}  // namespace ignis::cpu
