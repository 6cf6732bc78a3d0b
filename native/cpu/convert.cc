// Bulk conversions between a float dtype (f32, f16, bf16) and f32: AVX2 eight at a time where
// the CPU has it, bit-identical to the scalar conversions of core/dtype.h.
#include <cstring>

#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

#if IGNIS_X86
// 8 at a time through the cpu kernels' loaders (bit-identical to the scalar conversions).
template <class T>
IGNIS_AVX2 static size_t to_f32_avx2(const T* s, float* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) store8(d + i, load8(s + i));
  return i;
}
template <class T>
IGNIS_AVX2 static size_t from_f32_avx2(const float* s, T* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) store8(d + i, load8(s + i));
  return i;
}
#endif

void convert_to_f32(const void* src, DType t, float* dst, size_t n) {
  size_t i = 0;
  switch (t) {
    case DType::f32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::bf16: {
      const bf16* s = static_cast<const bf16*>(src);
#if IGNIS_X86
      if (has_avx2()) i = to_f32_avx2(s, dst, n);
#endif
      for (; i < n; i++) dst[i] = to_f32(s[i]);
      return;
    }
    case DType::f16: {
      const f16* s = static_cast<const f16*>(src);
#if IGNIS_X86
      if (has_avx2()) i = to_f32_avx2(s, dst, n);
#endif
      for (; i < n; i++) dst[i] = to_f32(s[i]);
      return;
    }
    case DType::i8:
    case DType::i32:
    case DType::Count: break;
  }
  fail_not_float(t);
}

void convert_from_f32(const float* src, void* dst, DType t, size_t n) {
  size_t i = 0;
  switch (t) {
    case DType::f32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::bf16: {
      bf16* d = static_cast<bf16*>(dst);
#if IGNIS_X86
      if (has_avx2()) i = from_f32_avx2(src, d, n);
#endif
      for (; i < n; i++) d[i] = from_f32<bf16>(src[i]);
      return;
    }
    case DType::f16: {
      f16* d = static_cast<f16*>(dst);
#if IGNIS_X86
      if (has_avx2()) i = from_f32_avx2(src, d, n);
#endif
      for (; i < n; i++) d[i] = from_f32<f16>(src[i]);
      return;
    }
    case DType::i8:
    case DType::i32:
    case DType::Count: break;
  }
  fail_not_float(t);
}

}  // namespace ignis::cpu
