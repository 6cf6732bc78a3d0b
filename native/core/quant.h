// The int8 weight format, defined once for the CPU and CUDA kernels: symmetric per group of
// `group` elements along K, scale = max|w| / 127 (1 for an all-zero group), q = w / scale
// rounded half to even and clamped to [-127, 127] (NaN -> 0). Host and device code.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define IGNIS_QUANT_HD __host__ __device__ __forceinline__
#else
#define IGNIS_QUANT_HD inline
#endif

namespace ignis {

inline constexpr float kQuantMax = 127.f;

// a / b correctly rounded (IEEE), whatever the device compiler's division flags.
IGNIS_QUANT_HD float quant_div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
// A group's scale from its largest magnitude.
IGNIS_QUANT_HD float quant_scale(float amax) { return amax > 0.f ? quant_div(amax, kQuantMax) : 1.f; }
// One weight: divided (not multiplied by 1/scale, so rounding matches exactly), rounded half to
// even (rintf in the default rounding mode), clamped.
IGNIS_QUANT_HD int8_t quant_value(float w, float scale) {
  const float r = rintf(quant_div(w, scale));
  return r != r ? int8_t(0) : int8_t(fminf(kQuantMax, fmaxf(-kQuantMax, r)));
}

}  // namespace ignis
