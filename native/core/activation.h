// The scalar activation functions, one definition for every kernel that applies them (the
// elementwise op and matmul's fused epilogue). Usable from CUDA device code too.
#pragma once
#include <cmath>

#include "op_params.h"

#if defined(__CUDACC__)
#define IGNIS_HD __host__ __device__ __forceinline__
#else
#define IGNIS_HD inline
#endif

namespace ignis {

// gelu, tanh form: 0.5 x (1 + tanh(y)), y = sqrt(2/pi) (x + 0.044715 x^3). Written as the
// identical x / (1 + e^(-2y)), which avoids the cancellation of 1 + tanh(y) for negative x.
IGNIS_HD float gelu_f32(float x) {
  const float k = 0.7978845608028654f;
  return x / (1.f + expf(-2.f * k * (x + 0.044715f * x * x * x)));
}
// silu: x * sigmoid(x)
IGNIS_HD float silu_f32(float x) { return x / (1.f + expf(-x)); }
IGNIS_HD float relu_f32(float x) { return x > 0.f ? x : 0.f; }

IGNIS_HD float apply_activation(Activation a, float x) {
  switch (a) {
    case Activation::gelu: return gelu_f32(x);
    case Activation::silu: return silu_f32(x);
    case Activation::relu: return relu_f32(x);
    default: return x;
  }
}

}  // namespace ignis
