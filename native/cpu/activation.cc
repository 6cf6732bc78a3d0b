// The elementwise activation op: gelu (tanh form), silu, relu, tanh, or a copy. The scalar path
// applies the definitions in core/activation.h; the AVX2 path computes the same functions
// with the vector exp of elementwise.h (gelu through the identity below).
#include <cstring>

#include "../core/activation.h"
#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

template <Activation A, class T>
static void activation_scalar(T* out, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = from_f32<T>(activate<A>(to_f32(x[i])));
}

#if IGNIS_X86
// gelu: 0.5 x (1 + tanh(y)) = x sigmoid(2y) = x / (1 + e^(-2y)), y = sqrt(2/pi) (x + 0.044715 x^3).
// Same function as gelu_f32, without its cancellation in 1 + tanh(y) for x << 0.
template <Activation A>
static inline IGNIS_AVX2 __m256 activation8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  if constexpr (A == Activation::gelu) {
    const __m256 c1 = _mm256_set1_ps(-2.f * 0.7978845608028654f);
    const __m256 c3 = _mm256_set1_ps(-2.f * 0.7978845608028654f * 0.044715f);
    __m256 m2y = _mm256_mul_ps(x, _mm256_fmadd_ps(c3, _mm256_mul_ps(x, x), c1));  // -2y
    return _mm256_div_ps(x, _mm256_add_ps(one, exp8(m2y)));
  } else if constexpr (A == Activation::silu) {
    return _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
  } else if constexpr (A == Activation::relu) {
    return _mm256_max_ps(x, _mm256_setzero_ps());  // NaN -> 0, as relu_f32
  } else if constexpr (A == Activation::tanh) {
    // |x| >= 1/2: 1 - 2 / (1 + e^(2|x|)), sign restored (e^(2|x|) = inf gives 1; NaN stays NaN).
    // |x| < 1/2: x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925 +
    // 21844x^13/6081075, the odd Taylor series (the form above loses bits to cancellation
    // there); its next term is below 5e-8 of x.
    const __m256 sign = _mm256_set1_ps(-0.f);
    const __m256 ax = _mm256_andnot_ps(sign, x);
    const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(one, exp8(_mm256_add_ps(ax, ax)))));
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(21844.f / 6081075.f);
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1382.f / 155925.f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(62.f / 2835.f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-17.f / 315.f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.f / 15.f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.f / 3.f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, x2), x, x);
    const __m256 is_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.5f), _CMP_LT_OQ);
    return _mm256_blendv_ps(_mm256_or_ps(big, _mm256_and_ps(sign, x)), small, is_small);
  } else {
    static_assert(A == Activation::none, "an activation without a vector form");
    return x;
  }
}

template <Activation A, class T>
IGNIS_AVX2 static void activation_avx2(T* out, const T* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(out + i, activation8<A>(load8(x + i)));
  if (i < n) {
    // The tail through the same vector code, so no element depends on where a chunk ends.
    float buf[8] = {};
    for (int64_t j = i; j < n; j++) buf[j - i] = to_f32(x[j]);
    _mm256_storeu_ps(buf, activation8<A>(_mm256_loadu_ps(buf)));
    for (int64_t j = i; j < n; j++) out[j] = from_f32<T>(buf[j - i]);
  }
}
#endif

template <Activation A, class T>
static void activation_typed(ThreadPool& pool, T* out, const T* x, int64_t n) {
  [[maybe_unused]] const bool simd = has_avx2();
  const int64_t grain = A == Activation::relu ? kElementGrain : kMathGrain;
  pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
#if IGNIS_X86
    if (simd) return activation_avx2<A>(out + b, x + b, e - b);
#endif
    activation_scalar<A>(out + b, x + b, e - b);
  });
}

void activate_f32(Activation act, float* v, int64_t n) {
  if (act == Activation::none) return;
  dispatch_activation(act, [&](auto a) {
    constexpr Activation A = decltype(a)::value;
#if IGNIS_X86
    if (has_avx2()) return activation_avx2<A>(v, v, n);
#endif
    activation_scalar<A>(v, v, n);
  });
}

void activation(ThreadPool& pool, const Tensor& out, const Tensor& x, Activation act) {
  const int64_t n = x.numel();
  if (n == 0) return;
  if (act == Activation::none) {
    if (out.raw() == x.raw()) return;
    char* o = static_cast<char*>(out.raw());
    const char* s = static_cast<const char*>(x.raw());
    const int64_t esize = int64_t(dtype_size(x.dtype));
    pool.parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) {
      std::memcpy(o + b * esize, s + b * esize, size_t((e - b) * esize));
    });
    return;
  }
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_activation(act, [&](auto a) { activation_typed<decltype(a)::value>(pool, out.data<T>(), x.data<T>(), n); });
  });
}

}  // namespace ignis::cpu
