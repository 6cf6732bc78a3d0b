// Device-side helpers every kernel file shares: checked launches, the float storage types and
// their f32 conversions, dtype dispatch, 16-byte packed loads, and fault reporting.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../core/error.h"
#include "kernels.h"

namespace ignis::cuda {

inline std::string describe(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Every CUDA runtime call is checked: a failure throws E_CUDA naming the call.
#define IGNIS_CUDA_CHECK(call)                                                              \
  do {                                                                                      \
    cudaError_t ignis_e_ = (call);                                                          \
    if (ignis_e_ != cudaSuccess) ::ignis::fail(::ignis::ErrorCode::Cuda, std::string(#call) + \
                                               ": " + ::ignis::cuda::describe(ignis_e_));   \
  } while (0)

// After a <<<...>>> launch: a bad configuration (too much shared memory, a grid too large)
// throws E_CUDA naming the kernel.
inline void check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail(ErrorCode::Cuda, std::string(kernel) + " launch: " + describe(e));
}

inline cudaStream_t stream_of(const Launch& L) { return static_cast<cudaStream_t>(L.stream); }

template <class T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// The float storage types: f32 -> float, f16 -> __half, bf16 -> __nv_bfloat16.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Calls fn(T{}) with T the storage type of a float dtype; E_DTYPE otherwise.
template <class Fn>
void dispatch_float(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::f16: fn(__half{}); return;
    case DType::bf16: fn(__nv_bfloat16{}); return;
    default: fail(ErrorCode::DType, std::string(op) + ": no CUDA kernel for dtype " + dtype_name(t));
  }
}

// 16 bytes moved as one load/store (ld.global.v4); the pointer must be 16-byte aligned.
struct alignas(16) Pack16 {
  uint32_t w[4];
};
template <class T>
__device__ __forceinline__ Pack16 load16(const T* p) {
  return *reinterpret_cast<const Pack16*>(p);
}
template <class T>
__device__ __forceinline__ void store16(T* p, const Pack16& v) {
  *reinterpret_cast<Pack16*>(p) = v;
}
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Records the first bad-data error of the device (see Fault in kernels.h).
__device__ __forceinline__ void report_fault(Fault* f, ErrorCode code, FaultOp op, int64_t value, int64_t index,
                                             int64_t limit) {
  if (atomicCAS(&f->code, 0, -1) == 0) {  // -1: being written
    f->op = int32_t(op);
    f->value = value;
    f->index = index;
    f->limit = limit;
    __threadfence_system();
    atomicExch(&f->code, int32_t(code) + 1);
  }
}

}  // namespace ignis::cuda
