// rmsnorm and layernorm over the last dim: each row of x [rows, D] is normalized on its own,
// so rows are split across the pool. Statistics are taken in f32 (scalar paths: double) over
// the row as stored; weight and bias are converted to f32 once per call.
#include <cmath>
#include <vector>

#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

static std::vector<float> to_f32_vector(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  convert_to_f32(t.raw(), t.dtype, v.data(), v.size());
  return v;
}

// ---- rmsnorm: out = x / sqrt(mean(x^2) + eps) * w ----

template <class T>
static void rmsnorm_rows_scalar(T* out, const T* x, const float* w, int64_t D, float eps,
                                int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const T* xr = x + r * D;
    T* o = out + r * D;
    double ss = 0;
    for (int64_t i = 0; i < D; i++) {
      double v = to_f32(xr[i]);
      ss += v * v;
    }
    float inv = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
    for (int64_t i = 0; i < D; i++) o[i] = from_f32<T>(to_f32(xr[i]) * inv * w[i]);
  }
}

#if IGNIS_X86
template <class T>
IGNIS_AVX2 static void rmsnorm_rows_avx2(T* out, const T* x, const float* w, int64_t D, float eps,
                                         int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const T* xr = x + r * D;
    T* o = out + r * D;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= D; i += 16) {
      __m256 a = load8(xr + i), b = load8(xr + i + 8);
      s0 = _mm256_fmadd_ps(a, a, s0);
      s1 = _mm256_fmadd_ps(b, b, s1);
    }
    for (; i + 8 <= D; i += 8) {
      __m256 a = load8(xr + i);
      s0 = _mm256_fmadd_ps(a, a, s0);
    }
    float ss = hsum8(_mm256_add_ps(s0, s1));
    for (; i < D; i++) {
      float v = to_f32(xr[i]);
      ss += v * v;
    }
    float inv = 1.f / std::sqrt(ss / float(D) + eps);
    __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= D; i += 8)
      store8(o + i, _mm256_mul_ps(_mm256_mul_ps(load8(xr + i), vinv), _mm256_loadu_ps(w + i)));
    for (; i < D; i++) o[i] = from_f32<T>(to_f32(xr[i]) * inv * w[i]);
  }
}
#endif

// Calls rows(o, x, D, r0, r1) with x's and out's typed pointers over x's rows of D (the last
// dim), in parallel chunks; nothing for an empty x.
template <class Rows>
static void over_rows(ThreadPool& pool, const Tensor& out, const Tensor& x, Rows&& rows_fn) {
  const int64_t D = x.dim(-1);
  if (x.numel() == 0 || D == 0) return;
  const int64_t rows = x.numel() / D;
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* xp = x.data<T>();
    pool.parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) { rows_fn(o, xp, D, r0, r1); });
  });
}

void rmsnorm(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  const std::vector<float> w = to_f32_vector(weight);  // [D]
  [[maybe_unused]] const bool simd = has_avx2();
  over_rows(pool, out, x, [&](auto* o, const auto* xp, int64_t D, int64_t r0, int64_t r1) {
#if IGNIS_X86
    if (simd) return rmsnorm_rows_avx2(o, xp, w.data(), D, eps, r0, r1);
#endif
    rmsnorm_rows_scalar(o, xp, w.data(), D, eps, r0, r1);
  });
}

// ---- layernorm: out = (x - mean) / sqrt(var + eps) * w + b, var biased ----
// Two passes for the statistics (mean, then sum (x - mean)^2): no cancellation when |mean|
// is large against the spread, unlike E[x^2] - E[x]^2.

template <class T>
static void layernorm_rows_scalar(T* out, const T* x, const float* w, const float* b, int64_t D,
                                  float eps, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const T* xr = x + r * D;
    T* o = out + r * D;
    double s = 0;
    for (int64_t i = 0; i < D; i++) s += to_f32(xr[i]);
    const double mean = s / double(D);
    double ss = 0;
    for (int64_t i = 0; i < D; i++) {
      double d = to_f32(xr[i]) - mean;
      ss += d * d;
    }
    const float rstd = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
    const float m = float(mean);
    for (int64_t i = 0; i < D; i++) o[i] = from_f32<T>((to_f32(xr[i]) - m) * rstd * w[i] + b[i]);
  }
}

#if IGNIS_X86
template <class T>
IGNIS_AVX2 static void layernorm_rows_avx2(T* out, const T* x, const float* w, const float* b,
                                           int64_t D, float eps, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const T* xr = x + r * D;
    T* o = out + r * D;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= D; i += 16) {
      s0 = _mm256_add_ps(s0, load8(xr + i));
      s1 = _mm256_add_ps(s1, load8(xr + i + 8));
    }
    for (; i + 8 <= D; i += 8) s0 = _mm256_add_ps(s0, load8(xr + i));
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < D; i++) s += to_f32(xr[i]);
    const float mean = s / float(D);

    const __m256 vmean = _mm256_set1_ps(mean);
    s0 = _mm256_setzero_ps();
    s1 = _mm256_setzero_ps();
    for (i = 0; i + 16 <= D; i += 16) {
      __m256 a = _mm256_sub_ps(load8(xr + i), vmean), c = _mm256_sub_ps(load8(xr + i + 8), vmean);
      s0 = _mm256_fmadd_ps(a, a, s0);
      s1 = _mm256_fmadd_ps(c, c, s1);
    }
    for (; i + 8 <= D; i += 8) {
      __m256 a = _mm256_sub_ps(load8(xr + i), vmean);
      s0 = _mm256_fmadd_ps(a, a, s0);
    }
    float ss = hsum8(_mm256_add_ps(s0, s1));
    for (; i < D; i++) {
      float d = to_f32(xr[i]) - mean;
      ss += d * d;
    }
    const float rstd = 1.f / std::sqrt(ss / float(D) + eps);

    const __m256 vrstd = _mm256_set1_ps(rstd);
    for (i = 0; i + 8 <= D; i += 8) {
      __m256 n = _mm256_mul_ps(_mm256_sub_ps(load8(xr + i), vmean), vrstd);
      store8(o + i, _mm256_fmadd_ps(n, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < D; i++) o[i] = from_f32<T>((to_f32(xr[i]) - mean) * rstd * w[i] + b[i]);
  }
}
#endif

void layernorm(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& weight,
               const Tensor& bias, float eps) {
  const std::vector<float> w = to_f32_vector(weight);  // [D]
  const std::vector<float> b = to_f32_vector(bias);    // [D]
  [[maybe_unused]] const bool simd = has_avx2();
  over_rows(pool, out, x, [&](auto* o, const auto* xp, int64_t D, int64_t r0, int64_t r1) {
#if IGNIS_X86
    if (simd) return layernorm_rows_avx2(o, xp, w.data(), b.data(), D, eps, r0, r1);
#endif
    layernorm_rows_scalar(o, xp, w.data(), b.data(), D, eps, r0, r1);
  });
}

}  // namespace ignis::cpu
