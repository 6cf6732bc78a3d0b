// Device-side helpers every kernel file shares: checked launches, the float storage types and
// their f32 conversions, dtype dispatch, 16-byte packs and their f32 views, grid-stride loops,
// warp reductions, and fault reporting.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "../core/error.h"
#include "kernels.h"

namespace ignis::cuda {

inline std::string describe(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Throws E_CUDA naming the call; or, for an error after which the context cannot be used (an
// illegal address, an uncorrectable ECC error: CUDA's sticky errors), marks the current device
// lost (runtime.h lost()) and throws E_DEVICE_LOST.
[[noreturn]] void cuda_failed(cudaError_t e, const std::string& call);

// Every CUDA runtime call is checked: a failure throws E_CUDA naming the call (cuda_failed).
#define IGNIS_CUDA_CHECK(call)                                                  \
  do {                                                                          \
    cudaError_t ignis_e_ = (call);                                              \
    if (ignis_e_ != cudaSuccess) ::ignis::cuda::cuda_failed(ignis_e_, #call);   \
  } while (0)

// After a <<<...>>> launch: a bad configuration (too much shared memory, a grid too large)
// throws E_CUDA naming the kernel.
inline void check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) cuda_failed(e, std::string(kernel) + " launch");
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
    case DType::i8:
    case DType::i32:
    case DType::Count: break;
  }
  fail(ErrorCode::DType, std::string(op) + ": no CUDA kernel for dtype " + (t < DType::Count ? dtype_name(t) : "?"));
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

template <class T>
constexpr int kPack = 16 / int(sizeof(T));  // elements per 16-byte pack

// A pack's kPack<T> elements in f32.
template <class T>
__device__ __forceinline__ void unpack(const Pack16& p, float (&f)[kPack<T>]) {
  T e[kPack<T>];
  memcpy(e, &p, 16);
#pragma unroll
  for (int k = 0; k < kPack<T>; k++) f[k] = to_f32(e[k]);
}

// W elements at p: one element (W == 1) or one 16-byte pack (W == kPack<T>, p 16-byte aligned),
// so that one loop serves a kernel's scalar and vector paths. load_elems / store_elems move the
// elements as they are; load_f32 / store_f32 convert them to f32 and back (rounded to T).
template <class T, int W>
__device__ __forceinline__ void load_elems(const T* p, T (&e)[W]) {
  static_assert(W == 1 || W == kPack<T>, "one element or one 16-byte pack");
  if constexpr (W == 1) {
    e[0] = *p;
  } else {
    const Pack16 v = load16(p);
    memcpy(e, &v, 16);
  }
}
template <class T, int W>
__device__ __forceinline__ void store_elems(T* p, const T (&e)[W]) {
  static_assert(W == 1 || W == kPack<T>, "one element or one 16-byte pack");
  if constexpr (W == 1) {
    *p = e[0];
  } else {
    Pack16 v;
    memcpy(&v, e, 16);
    store16(p, v);
  }
}
template <class T, int W>
__device__ __forceinline__ void load_f32(const T* p, float (&f)[W]) {
  static_assert(W == 1 || W == kPack<T>, "one element or one 16-byte pack");
  if constexpr (W == 1)
    f[0] = to_f32(*p);
  else
    unpack<T>(load16(p), f);
}
template <class T, int W>
__device__ __forceinline__ void store_f32(T* p, const float (&f)[W]) {
  T e[W];
#pragma unroll
  for (int k = 0; k < W; k++) e[k] = from_f32<T>(f[k]);
  store_elems<T, W>(p, e);
}

// (lo, hi) rounded to nearest even as one 32-bit word of two T (f16 or bf16), lo in the low half.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t u;
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(lo, hi);
    memcpy(&u, &h, 4);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    memcpy(&u, &h, 4);
  }
  return u;
}

// ---- grid-stride loops over n elements ----

// Blocks of `threads` for grid_stride<W> over n elements: a thread for each group of W and each
// tail element, at most 32 blocks an SM (the loop covers the rest).
inline unsigned grid_stride_blocks(const Launch& L, int64_t n, int W, int threads) {
  const int64_t work = n / W + n % W;
  const int64_t cap = int64_t(L.sm_count > 0 ? L.sm_count : 132) * 32;
  const int64_t blocks = work < 1 ? 1 : ceil_div<int64_t>(work, threads);
  return unsigned(blocks < cap ? blocks : cap);
}

// The grid's threads over n elements in groups of W: group(g) for groups g < n / W (elements
// [g W, g W + W)), then elem(i) for the n % W tail elements. W == 1: elem for every element.
template <int W, class Group, class Elem>
__device__ __forceinline__ void grid_stride(int64_t n, Group&& group, Elem&& elem) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;  // elements covered by the groups
  if constexpr (W > 1) {
    const int64_t groups = n / W;
    for (int64_t g = tid; g < groups; g += stride) group(g);
    done = groups * W;
  }
  for (int64_t i = done + tid; i < n; i += stride) elem(i);
}

// ---- warp reductions ----

struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }  // skips NaN, as fmax
};
struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// op over each group of kWidth adjacent lanes (xor butterfly), the result in all of them.
template <int kWidth = 32, class Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
  for (int o = kWidth / 2; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, Sum{}); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, Max{}); }

// The minimum of v over a block of kThreads threads (a multiple of 32), valid in thread 0 (the
// first bad index a check kernel found).
template <int kThreads>
__device__ __forceinline__ int64_t block_min(int64_t v) {
  __shared__ int64_t warp_min[kThreads / 32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const int64_t other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other < v ? other : v;
  }
  if ((threadIdx.x & 31) == 0) warp_min[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kThreads / 32; w++) v = warp_min[w] < v ? warp_min[w] : v;
  return v;
}

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
