// What the int8 weight kernels share (quantize.cu, matmul_q.cu): the layout of core/quant.h
// (q [N, K] i8, scales [N, K / group] f32), int8 -> f32 conversion in registers, and the checks
// of the kernels' int indexing.
#pragma once
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <type_traits>

#include "../core/activation.h"
#include "../core/quant.h"
#include "common.cuh"

namespace ignis::cuda::quant {

constexpr int kWarp = 32;

// The 4 signed bytes of w as exact floats: (b ^ 0x80) is b + 128 as an unsigned byte; placed
// in the mantissa of 2^23 it reads 2^23 + b + 128, and subtracting 2^23 + 128 is exact.
__device__ __forceinline__ void i8x4_to_f32(uint32_t w, float (&f)[4]) {
  const uint32_t u = w ^ 0x80808080u;
#pragma unroll
  for (int e = 0; e < 4; e++) f[e] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540u + e)) - 8388736.f;
}

template <class T>
__device__ __forceinline__ uint32_t bits16(T v) {
  uint16_t b;
  memcpy(&b, &v, 2);
  return b;
}

// x[0..3] as f32; vec: p is 4-element aligned (one 8- or 16-byte load).
template <class T>
__device__ __forceinline__ float4 load_quad(const T* p, bool vec) {
  if constexpr (sizeof(T) == 4) {
    if (vec) return *reinterpret_cast<const float4*>(p);
  } else {
    if (vec) {
      const uint2 u = *reinterpret_cast<const uint2*>(p);
      T e[4];
      memcpy(e, &u, 8);
      return make_float4(to_f32(e[0]), to_f32(e[1]), to_f32(e[2]), to_f32(e[3]));
    }
  }
  return make_float4(to_f32(p[0]), to_f32(p[1]), to_f32(p[2]), to_f32(p[3]));
}

// The kernels index rows and K with int (offsets in int64).
inline void check_int(const char* op, int64_t v, const char* what) {
  if (v > INT_MAX)
    fail(ErrorCode::Shape,
         std::string(op) + ": " + what + " = " + std::to_string(v) + " is too large for the CUDA kernels");
}

}  // namespace ignis::cuda::quant
