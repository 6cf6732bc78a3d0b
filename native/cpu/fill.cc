// The tensor-making kernels: fill (a constant of any dtype), randn (the counter-based normal
// of core/random.h, element by element so the thread count never changes the result) and cast
// (float <-> float conversion, or a copy).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../core/random.h"
#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

template <class U>
static void fill_pattern(ThreadPool& pool, void* dst, int64_t n, U pattern) {
  U* p = static_cast<U*>(dst);
  pool.parallel_for(n, 4 * kElementGrain,
                    [&](int64_t b, int64_t e) { std::fill(p + b, p + e, pattern); });
}

void fill(ThreadPool& pool, const Tensor& out, double value) {
  const int64_t n = out.numel();
  const uint32_t bits = fill_bits(out.dtype, value);
  switch (dtype_size(out.dtype)) {
    case 4: return fill_pattern<uint32_t>(pool, out.raw(), n, bits);
    case 2: return fill_pattern<uint16_t>(pool, out.raw(), n, uint16_t(bits));
    default: return fill_pattern<uint8_t>(pool, out.raw(), n, uint8_t(bits));
  }
}

void randn(ThreadPool& pool, const Tensor& out, uint64_t seed) {
  const uint64_t key = randn_key(seed);
  dispatch_float(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    pool.parallel_for(out.numel(), kMathGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) o[i] = from_f32<T>(randn_at(key, uint64_t(i)));
    });
  });
}

template <class I, class O>
static void cast_scalar(O* out, const I* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = from_f32<O>(to_f32(x[i]));
}

#if IGNIS_X86
template <class I, class O>
IGNIS_AVX2 static void cast_avx2(O* out, const I* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(out + i, load8(x + i));
  cast_scalar(out + i, x + i, n - i);
}
#endif

void cast(ThreadPool& pool, const Tensor& out, const Tensor& x) {
  const int64_t n = x.numel();
  if (out.dtype == x.dtype) {
    if (out.raw() == x.raw()) return;
    char* o = static_cast<char*>(out.raw());
    const char* s = static_cast<const char*>(x.raw());
    const int64_t esize = int64_t(dtype_size(x.dtype));
    pool.parallel_for(n, 4 * kElementGrain, [&](int64_t b, int64_t e) {
      std::memcpy(o + b * esize, s + b * esize, size_t((e - b) * esize));
    });
    return;
  }
  if (!is_float(out.dtype) || !is_float(x.dtype))
    fail(ErrorCode::Internal, std::string("cast: no conversion from ") + dtype_name(x.dtype) +
                                  " to " + dtype_name(out.dtype));
  [[maybe_unused]] const bool simd = has_avx2();
  dispatch_float(x.dtype, [&](auto in_tag) {
    dispatch_float(out.dtype, [&](auto out_tag) {
      using I = decltype(in_tag);
      using O = decltype(out_tag);
      const I* xp = x.data<I>();
      O* o = out.data<O>();
      pool.parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) {
#if IGNIS_X86
        if (simd) return cast_avx2(o + b, xp + b, e - b);
#endif
        cast_scalar(o + b, xp + b, e - b);
      });
    });
  });
}

}  // namespace ignis::cpu
