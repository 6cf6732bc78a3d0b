// Row-wise kernel scaffolding shared by the ops that reduce over the last dim of x [rows, n]
// (rmsnorm, layernorm, softmax): short rows share a warp (4 to 32 lanes each), long rows get a
// block; rows whose pointers are 16-byte aligned and n a multiple of the pack move as packs.
#pragma once
#include <type_traits>

#include "common.cuh"

namespace ignis::cuda {

constexpr int kRowsBlock = 256;  // threads per block when a row takes part of a warp or one warp

// Calls fn(r, len, t, nt) for each row r this thread works on: thread t of the nt threads that
// share the row, len = n. kRowThreads in {4, 8, 16, 32}: groups of lanes of a warp, the warp
// looping while any of its rows exists, so every lane reaches row_reduce's shuffles (past the
// last row: r = 0, len = 0). kRowThreads == 0: the whole block, one row at a time.
template <int kRowThreads, class Fn>
__device__ __forceinline__ void for_each_row(int64_t rows, int64_t n, Fn&& fn) {
  if constexpr (kRowThreads == 0) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) fn(row, n, int(threadIdx.x), int(blockDim.x));
  } else {
    constexpr int kRowsWarp = 32 / kRowThreads;
    const int lane = int(threadIdx.x & 31);
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
    for (int64_t base = (int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5)) * kRowsWarp; base < rows;
         base += warps * kRowsWarp) {
      const int64_t row = base + lane / kRowThreads;
      const bool valid = row < rows;
      fn(valid ? row : 0, valid ? n : 0, lane % kRowThreads, kRowThreads);
    }
  }
}

// Calls fn(v) with v each of this thread's elements of a row xr [len] in f32: groups t, t + nt,
// ... of W elements (W == 1, or a 16-byte pack), in order.
template <class T, int W, class Fn>
__device__ __forceinline__ void for_row_elems(const T* xr, int64_t len, int t, int nt, Fn&& fn) {
  for (int64_t g = t; g < len / W; g += nt) {
    float f[W];
    load_f32<T, W>(xr + g * W, f);
#pragma unroll
    for (int k = 0; k < W; k++) fn(f[k]);
  }
}

// op-reduction of v over the threads of a row, returned to all of them. smem [32]: the block's
// per-warp partials (block rows only); `identity` fills the lanes past the block's warps.
template <int kRowThreads, class Op>
__device__ __forceinline__ float row_reduce(float v, float* smem, Op op, float identity) {
  v = warp_reduce<kRowThreads == 0 ? 32 : kRowThreads>(v, op);
  if constexpr (kRowThreads == 0) {
    const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
    __syncthreads();  // the previous call's readers are done with smem
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = warp_reduce(lane < int(blockDim.x >> 5) ? smem[lane] : identity, op);
  }
  return v;
}

// Picks the layout for `rows` rows of n elements of T and calls
// go(integral_constant<bool, kVec>, integral_constant<int, kRowThreads>, grid, block), kVec = vec:
// the kernel moves 16-byte packs (n / kPack<T> units a row) or elements (n units). Rows of up to
// 256 units take 4..32 lanes (a 256-thread block holding 256 / kRowThreads rows), longer ones a
// block of 128..1024 threads, about 4 units each. The grid is capped; the kernels stride over rows.
template <class T, class Go>
void launch_rows(const Launch& L, int64_t rows, int64_t n, bool vec, Go&& go) {
  const int64_t cap = int64_t(L.sm_count > 0 ? L.sm_count : 132) * 16;
  auto layout = [&](auto vec_tag) {
    const int64_t units = decltype(vec_tag)::value ? n / kPack<T> : n;
    auto warp_rows = [&](auto rt) {
      constexpr int R = decltype(rt)::value;
      const int64_t blocks = ceil_div<int64_t>(rows, kRowsBlock / R);
      go(vec_tag, rt, dim3(unsigned(blocks < cap ? blocks : cap)), dim3(kRowsBlock));
    };
    if (units <= 16) return warp_rows(std::integral_constant<int, 4>{});
    if (units <= 32) return warp_rows(std::integral_constant<int, 8>{});
    if (units <= 64) return warp_rows(std::integral_constant<int, 16>{});
    if (units <= 256) return warp_rows(std::integral_constant<int, 32>{});
    unsigned threads = 128;
    while (threads < 1024 && int64_t(threads) * 4 < units) threads *= 2;
    go(vec_tag, std::integral_constant<int, 0>{}, dim3(unsigned(rows < cap ? rows : cap)), dim3(threads));
  };
  if (vec)
    layout(std::true_type{});
  else
    layout(std::false_type{});
}

}  // namespace ignis::cuda
