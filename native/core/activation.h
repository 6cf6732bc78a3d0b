// The scalar activation functions, one definition for every kernel that applies them (the
// elementwise op and matmul's fused epilogue, on both backends). Usable from CUDA device code.
// activate<A> has no generic definition, so an activation added to IGNIS_ACTIVATIONS fails to
// compile until it is defined here.
#pragma once
#include <cmath>
#include <type_traits>

#include "error.h"
#include "op.h"

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
IGNIS_HD float tanh_f32(float x) { return tanhf(x); }

template <Activation A> IGNIS_HD float activate(float x);
template <> IGNIS_HD float activate<Activation::none>(float x) { return x; }
template <> IGNIS_HD float activate<Activation::gelu>(float x) { return gelu_f32(x); }
template <> IGNIS_HD float activate<Activation::silu>(float x) { return silu_f32(x); }
template <> IGNIS_HD float activate<Activation::relu>(float x) { return relu_f32(x); }
template <> IGNIS_HD float activate<Activation::tanh>(float x) { return tanh_f32(x); }

// A run-time activation applied to one value: one case per activation, no default.
IGNIS_HD float apply_activation(Activation a, float x) {
  switch (a) {
#define IGNIS_X(name) \
  case Activation::name: return activate<Activation::name>(x);
    IGNIS_ACTIVATIONS(IGNIS_X)
#undef IGNIS_X
    case Activation::Count: break;
  }
  return x;
}

// Calls fn(std::integral_constant<Activation, A>{}) for the run-time a, so a kernel is
// instantiated per activation with one switch, written here once. Host code.
template <class Fn>
inline void dispatch_activation(Activation a, Fn&& fn) {
  switch (a) {
#define IGNIS_X(name) \
  case Activation::name: return fn(std::integral_constant<Activation, Activation::name>{});
    IGNIS_ACTIVATIONS(IGNIS_X)
#undef IGNIS_X
    case Activation::Count: break;
  }
  throw Error(ErrorCode::Internal, "activation: not an activation");
}

}  // namespace ignis
