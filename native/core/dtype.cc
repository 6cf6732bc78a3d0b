// dtype names, the scalar f16 <-> f32 conversions (bit-exact, round to nearest even) and fill
// bits. The bulk (vectorized) conversions are the CPU backend's (native/cpu/convert.cc).
#include "dtype.h"

#include <cmath>
#include <limits>

#include "error.h"

namespace ignis {

bool parse_dtype(std::string_view name, DType* out) {
  for (size_t i = 0; i < size_t(DType::Count); i++) {
    if (name == kDTypeNames[i]) {
      *out = DType(i);
      return true;
    }
  }
  return false;
}

void fail_not_float(DType t) {
  fail(ErrorCode::Internal, std::string("a float kernel was given ") + (t < DType::Count ? dtype_name(t) : "no dtype"));
}

float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    // subnormal: value = man * 2^-24
    float v = float(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t f32_to_f16_bits(float f) {
  uint32_t u = f32_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (a < 0x38800000u) {
    // result is subnormal (or zero): value / 2^-24, rounded to nearest even
    if (a < 0x33000000u) return sign;  // < 2^-25: rounds to zero
    uint32_t exp = a >> 23;
    uint32_t man = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exp;  // 14..24
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return uint16_t(sign | q);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round mantissa to 10 bits, nearest even
  return uint16_t(sign | ((r - 0x38000000u) >> 13));
}

// value truncated toward zero and clamped to I's range; NaN -> 0.
template <class I>
static I to_int(double value) {
  if (std::isnan(value)) return 0;
  const double t = std::trunc(value);
  if (t <= double(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (t >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return I(t);
}

uint32_t fill_bits(DType dtype, double value) {
  const float f = float(value);
  switch (dtype) {
    case DType::f32: return f32_to_bits(f);
    case DType::f16: return f32_to_f16_bits(f);
    case DType::bf16: return f32_to_bf16_bits(f);
    case DType::i8: return uint8_t(to_int<int8_t>(value));
    case DType::i32: return uint32_t(to_int<int32_t>(value));
    case DType::Count: break;
  }
  fail(ErrorCode::Internal, "fill: not a dtype");
}

}  // namespace ignis
