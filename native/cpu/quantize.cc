// quantize and dequantize: float weights [N, K] to the symmetric int8 format of core/quant.h
// (q i8 [N, K], scales f32 or f16 [N, K / group]) and back.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/quant.h"
#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace ignis::cpu {
namespace {

using gemm::advance;

// Rows of work per parallel chunk so each chunk has at least ~32K elements.
int64_t row_grain(int64_t K) { return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, K)); }

// A group's scale from its largest magnitude: core/quant.h's, or with f16 that value rounded up
// onto f16's grid (so that q = w / scale still fits [-127, 127]: each weight then rounds to half a
// step of its group's stored scale, as with f32 scales, the scale being at most 2^-11 relative, or
// 2^-24 absolute below f16's normal range, larger). Past f16's largest value: infinity, which
// quantize() reports.
inline float group_scale(float amax, bool f16) {
  const float s = quant_scale(amax);
  if (!f16) return s;
  uint16_t h = f32_to_f16_bits(s);
  if (f16_bits_to_f32(h) < s) h++;  // a positive value: the next f16 up (0x7bff + 1 is infinity)
  return f16_bits_to_f32(h);
}

// One group of n weights: its scale, and q. The formula is core/quant.h's, element for element.
void quantize_group_scalar(const float* v, int64_t n, int8_t* o, float* scale_out, bool f16) {
  float amax = 0.f;
  for (int64_t k = 0; k < n; k++) amax = std::max(amax, std::fabs(v[k]));  // NaN ignored
  const float scale = group_scale(amax, f16);
  *scale_out = scale;
  for (int64_t k = 0; k < n; k++) o[k] = quant_value(v[k], scale);
}

#if IGNIS_X86
// The same, 8 lanes at a time: |v| max with NaN ignored (max returns its second operand when
// one is NaN), the IEEE division, round to nearest even (rintf's default mode), clamp, NaN -> 0.
IGNIS_AVX2 void quantize_group_avx2(const float* v, int64_t n, int8_t* o, float* scale_out, bool f16) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 m = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(v + k)), m);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float amax = 0.f;
  for (float x : lanes) amax = std::max(amax, x);
  for (int64_t t = k; t < n; t++) amax = std::max(amax, std::fabs(v[t]));
  const float scale = group_scale(amax, f16);
  *scale_out = scale;
  const __m256 vs = _mm256_set1_ps(scale), hi = _mm256_set1_ps(kQuantMax), lo = _mm256_set1_ps(-kQuantMax);
  k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(v + k), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 ordered = _mm256_cmp_ps(r, r, _CMP_ORD_Q);
    const __m256 c = _mm256_and_ps(ordered, _mm256_min_ps(_mm256_max_ps(r, lo), hi));
    const __m256i i32 = _mm256_cvtps_epi32(c);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(o + k), _mm_packs_epi16(i16, i16));
  }
  for (; k < n; k++) o[k] = quant_value(v[k], scale);
}
#endif

}  // namespace

void quantize_row(const float* v, int64_t K, int64_t group, int8_t* q, float* scales, bool f16) {
  auto* one_group = quantize_group_scalar;
#if IGNIS_X86
  if (has_avx2()) one_group = quantize_group_avx2;
#endif
  for (int64_t g = 0; g < K / group; g++) one_group(v + g * group, group, q + g * group, scales + g, f16);
}

void quantize(ThreadPool& pool, const Tensor& q, const Tensor& scales, const Tensor& w, int64_t group) {
  const int64_t K = w.dim(-1), N = K ? w.numel() / K : 0, G = group ? K / group : 0;
  if (N == 0 || K == 0) return;
  const bool f16 = scales.dtype == DType::f16;
  int8_t* qp = q.data<int8_t>();
  pool.parallel_for(N, row_grain(K), [&](int64_t n0, int64_t n1) {
    std::vector<float> row(static_cast<size_t>(K)), rs(static_cast<size_t>(G));
    for (int64_t n = n0; n < n1; n++) {
      const float* src = static_cast<const float*>(advance(w.raw(), w.dtype, n * K));
      if (w.dtype != DType::f32) {
        convert_to_f32(src, w.dtype, row.data(), size_t(K));
        src = row.data();
      }
      if (!f16) {
        quantize_row(src, K, group, qp + n * K, scales.data<float>() + n * G);
        continue;
      }
      quantize_row(src, K, group, qp + n * K, rs.data(), true);
      for (int64_t g = 0; g < G; g++) {
        if (!std::isinf(rs[size_t(g)])) continue;
        float amax = 0.f;
        for (int64_t k = g * group; k < (g + 1) * group; k++) amax = std::max(amax, std::fabs(src[k]));
        fail(ErrorCode::Range, "quantize: row " + std::to_string(n) + ", group " + std::to_string(g) +
                                   ": its largest magnitude " + std::to_string(amax) +
                                   " needs a scale past f16's largest (65504): quantize with scales 'f32'");
      }
      // exact: each scale is on f16's grid
      convert_from_f32(rs.data(), advance(scales.raw(), DType::f16, n * G), DType::f16, size_t(G));
    }
  });
}

void dequantize(ThreadPool& pool, const Tensor& out, const Tensor& q, const Tensor& scales, int64_t group) {
  const int64_t K = q.dim(-1), N = K ? q.numel() / K : 0, G = group ? K / group : 0;
  if (N == 0 || K == 0) return;
  const int8_t* qp = q.data<int8_t>();
  pool.parallel_for(N, row_grain(K), [&](int64_t n0, int64_t n1) {
    std::vector<float> row(static_cast<size_t>(K)), rs(static_cast<size_t>(G));
    for (int64_t n = n0; n < n1; n++) {
      convert_to_f32(advance(scales.raw(), scales.dtype, n * G), scales.dtype, rs.data(), size_t(G));
      for (int64_t g = 0; g < G; g++) {
        const float s = rs[size_t(g)];
        for (int64_t k = g * group; k < (g + 1) * group; k++) row[size_t(k)] = float(qp[n * K + k]) * s;
      }
      convert_from_f32(row.data(), advance(out.raw(), out.dtype, n * K), out.dtype, size_t(K));
    }
  });
}

}  // namespace ignis::cpu
