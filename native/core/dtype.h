// Element types of ignis tensors, their names and sizes, and the f16/bf16 <-> f32 conversions.
// One enum with a name table and a static_assert, so adding a dtype fails to compile until
// every table knows it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace ignis {

enum class DType : uint8_t { f32, f16, bf16, i8, i32, Count };

inline constexpr const char* kDTypeNames[] = {"f32", "f16", "bf16", "i8", "i32"};
inline constexpr size_t kDTypeSizes[] = {4, 2, 2, 1, 4};
static_assert(sizeof(kDTypeNames) / sizeof(kDTypeNames[0]) == size_t(DType::Count),
              "every dtype needs a name");
static_assert(sizeof(kDTypeSizes) / sizeof(kDTypeSizes[0]) == size_t(DType::Count),
              "every dtype needs a size");

inline const char* dtype_name(DType t) { return kDTypeNames[size_t(t)]; }
inline size_t dtype_size(DType t) { return kDTypeSizes[size_t(t)]; }
inline bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
bool parse_dtype(std::string_view name, DType* out);
[[noreturn]] void fail_not_float(DType t);  // E_INTERNAL: a float kernel was given t

// 16-bit float storage types. Arithmetic is always done in f32.
struct f16 { uint16_t bits; };
struct bf16 { uint16_t bits; };

inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float to_f32(float x) { return x; }
inline float to_f32(bf16 x) { return bits_to_f32(uint32_t(x.bits) << 16); }
float f16_bits_to_f32(uint16_t h);
uint16_t f32_to_f16_bits(float f);  // round to nearest even, overflow -> inf, NaN kept
inline float to_f32(f16 x) { return f16_bits_to_f32(x.bits); }

inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return uint16_t(u >> 16);
}

// The bits one element of `dtype` holds after a fill with `value`: floats rounded to nearest
// even, i8/i32 truncated toward zero and clamped (NaN -> 0). The element is the low
// dtype_size(dtype) bytes of the result (little-endian).
uint32_t fill_bits(DType dtype, double value);

template <class T> inline T from_f32(float x);
template <> inline float from_f32<float>(float x) { return x; }
template <> inline bf16 from_f32<bf16>(float x) { return bf16{f32_to_bf16_bits(x)}; }
template <> inline f16 from_f32<f16>(float x) { return f16{f32_to_f16_bits(x)}; }

// Calls fn(T{}) with T the storage type of a float dtype (float, f16 or bf16). The op table
// has checked the dtype before a kernel calls this; an integer dtype here is a bug (E_INTERNAL).
template <class Fn> void dispatch_float(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::f16: fn(f16{}); return;
    case DType::bf16: fn(bf16{}); return;
    case DType::i8:
    case DType::i32:
    case DType::Count: break;
  }
  fail_not_float(t);
}

}  // namespace ignis
