// argmax along the last axis on CUDA: out [rows] (i32) = the first index of each row's maximum,
// NaN above every number (cpu::argmax semantics). Rows take part of a warp, a warp or a block
// (rows.cuh's layout); each thread keeps the best (value, index) of its elements, then the
// row's threads combine theirs with shuffles (and shared memory across a block's warps).
#include <cstdint>

#include "rows.cuh"

namespace ignis::cuda {
namespace {

constexpr int64_t kNone = INT64_MAX;  // no element seen yet

// Whether (v, i) beats (bv, bi): NaN beats every number, a larger number wins, and between
// equals (or two NaNs) the lower index does.
__device__ __forceinline__ bool beats(float v, int64_t i, float bv, int64_t bi) {
  if (i == kNone) return false;
  if (bi == kNone) return true;
  const bool vn = isnan(v), bn = isnan(bv);
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

// The best of each aligned group of kLanes lanes, in all of them.
template <int kLanes>
__device__ __forceinline__ void group_best(float& bv, int64_t& bi) {
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, bv, off);
    const int64_t i = __shfl_xor_sync(0xffffffffu, bi, off);
    if (beats(v, i, bv, bi)) bv = v, bi = i;
  }
}

template <class T, int kRowThreads>
__global__ void __launch_bounds__(1024) argmax_kernel(int32_t* out, const T* x, int64_t rows, int64_t n) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  for_each_row<kRowThreads>(rows, n, [&](int64_t r, int64_t len, int t, int nt) {
    const T* xr = x + r * n;
    float bv = 0.f;
    int64_t bi = kNone;
    for (int64_t i = t; i < len; i += nt) {  // ascending: an equal later element never wins
      const float v = to_f32(xr[i]);
      if (beats(v, i, bv, bi)) bv = v, bi = i;
    }
    group_best<kRowThreads == 0 ? 32 : kRowThreads>(bv, bi);
    if constexpr (kRowThreads == 0) {
      const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
      __syncthreads();  // the previous row's readers are done with sv / si
      if (lane == 0) sv[warp] = bv, si[warp] = bi;
      __syncthreads();
      const bool has = lane < int(blockDim.x >> 5);
      bv = has ? sv[lane] : 0.f;
      bi = has ? si[lane] : kNone;
      group_best<32>(bv, bi);
    }
    if (t == 0 && len > 0) out[r] = int32_t(bi);
  });
}

}  // namespace

void argmax(const Launch& L, const Tensor& out, const Tensor& x) {
  const int64_t n = x.shape.back();
  const int64_t rows = n > 0 ? x.numel() / n : 0;
  if (rows == 0) return;
  dispatch_float(x.dtype, "argmax", [&](auto tag) {
    using T = decltype(tag);
    launch_rows<T>(L, rows, n, false, [&](auto, auto rt, dim3 grid, dim3 block) {
      argmax_kernel<T, decltype(rt)::value><<<grid, block, 0, stream_of(L)>>>(out.data<int32_t>(), x.data<T>(), rows, n);
      check_launch("argmax_kernel");
    });
  });
}

}  // namespace ignis::cuda
