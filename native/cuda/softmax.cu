// softmax along any axis on CUDA, x viewed as [outer, n, inner] (n = the axis), numerically
// stable: out = e^(x - max) / sum e^(x - max), in f32 (cpu::softmax semantics). The last axis
// (inner == 1) runs contiguous rows, part of a warp, a warp or a block per row; other axes give
// each thread a column (32 adjacent columns per block), its n entries split over the block's rows.
#include "rows.cuh"

namespace ignis::cuda {
namespace {

// ---- contiguous rows: x [rows, n] (the row layout is rows.cuh's) ----
// Three passes over the row (max, sum of exps, write); the second and third read x again
// (L1/L2 hits) rather than keeping the row in registers.

template <class T, int kRowThreads, bool kVec>
__global__ void __launch_bounds__(1024) softmax_rows_kernel(T* out, const T* x, int64_t rows, int64_t n) {
  __shared__ float smem[32];
  constexpr int W = kVec ? kPack<T> : 1;  // elements moved at once
  for_each_row<kRowThreads>(rows, n, [&](int64_t r, int64_t len, int t, int nt) {
    const T* xr = x + r * n;  // [n]
    T* o = out + r * n;       // [n]
    float m = -INFINITY;      // max x (fmaxf skips NaN, as the CPU's fmax)
    for_row_elems<T, W>(xr, len, t, nt, [&](float v) { m = fmaxf(m, v); });
    m = row_reduce<kRowThreads>(m, smem, Max{}, -INFINITY);
    float s = 0.f;  // sum e^(x - m)
    for_row_elems<T, W>(xr, len, t, nt, [&](float v) { s += expf(v - m); });
    const float inv = __frcp_rn(row_reduce<kRowThreads>(s, smem, Sum{}, 0.f));
    for (int64_t g = t; g < len / W; g += nt) {
      float f[W];
      load_f32<T, W>(xr + g * W, f);
#pragma unroll
      for (int k = 0; k < W; k++) f[k] = expf(f[k] - m) * inv;
      store_f32<T, W>(o + g * W, f);
    }
  });
}

template <class T>
void softmax_rows_cuda(const Launch& L, T* out, const T* x, int64_t rows, int64_t n) {
  const bool vec = n % kPack<T> == 0 && aligned16(out) && aligned16(x);
  launch_rows<T>(L, rows, n, vec, [&](auto vec_tag, auto rt, dim3 grid, dim3 block) {
    softmax_rows_kernel<T, decltype(rt)::value, decltype(vec_tag)::value>
        <<<grid, block, 0, stream_of(L)>>>(out, x, rows, n);
    check_launch("softmax_rows_kernel");
  });
}

// ---- strided rows: x [outer, n, inner], inner > 1 ----
// Flat column c = o * inner + i (o < outer, i < inner) holds x[o, :, i]. A block of (32, ty)
// threads takes 32 adjacent columns (so a warp reads 32 adjacent elements of a row of the
// axis); thread (tx, ty) reduces entries j = ty, ty + ty_count, ... of column tx, and the ty
// partials are combined through shared memory. Exps are recomputed in the write pass.

constexpr int kColsBlock = 32;   // columns per block (blockDim.x)
constexpr int kMaxColRows = 32;  // most threads along the axis per column (blockDim.y)

template <class T>
__global__ void __launch_bounds__(1024) softmax_cols_kernel(T* out, const T* x, int64_t outer, int64_t n,
                                                            int64_t inner) {
  __shared__ float part[kMaxColRows][kColsBlock];  // [ty, tx]: per-thread partial max, then sum
  const int tx = int(threadIdx.x), ty = int(threadIdx.y), nty = int(blockDim.y);
  const int64_t cols = outer * inner;
  for (int64_t c0 = int64_t(blockIdx.x) * kColsBlock; c0 < cols; c0 += int64_t(gridDim.x) * kColsBlock) {
    const int64_t col = c0 + tx;
    const bool valid = col < cols;
    const int64_t o = valid ? col / inner : 0, i = valid ? col - o * inner : 0;
    const T* xc = x + o * n * inner + i;  // x[o, 0, i]; entry j at xc[j * inner]
    T* oc = out + o * n * inner + i;
    const int64_t len = valid ? n : 0;

    float m = -INFINITY;
    for (int64_t j = ty; j < len; j += nty) m = fmaxf(m, to_f32(xc[j * inner]));
    part[ty][tx] = m;
    __syncthreads();
    m = part[0][tx];
    for (int k = 1; k < nty; k++) m = fmaxf(m, part[k][tx]);
    __syncthreads();  // all have read part before it takes the sums

    float s = 0.f;
    for (int64_t j = ty; j < len; j += nty) s += expf(to_f32(xc[j * inner]) - m);
    part[ty][tx] = s;
    __syncthreads();
    s = part[0][tx];
    for (int k = 1; k < nty; k++) s += part[k][tx];
    __syncthreads();  // all have read part before the next columns' maxima
    const float inv = __frcp_rn(s);

    for (int64_t j = ty; j < len; j += nty) oc[j * inner] = from_f32<T>(expf(to_f32(xc[j * inner]) - m) * inv);
  }
}

template <class T>
void softmax_cols_cuda(const Launch& L, T* out, const T* x, int64_t outer, int64_t n, int64_t inner) {
  const int64_t sms = L.sm_count > 0 ? L.sm_count : 132;
  const int64_t blocks = ceil_div<int64_t>(outer * inner, kColsBlock);
  // 8 threads along the axis; 32 when the columns fill few blocks and the axis is long.
  int ty = blocks < sms * 4 && n >= 256 ? kMaxColRows : 8;
  if (n < ty) ty = int(n);
  const int64_t cap = sms * (2048 / (kColsBlock * ty)) * 4;
  softmax_cols_kernel<T><<<dim3(unsigned(blocks < cap ? blocks : cap)), dim3(kColsBlock, unsigned(ty)), 0,
                           stream_of(L)>>>(out, x, outer, n, inner);
  check_launch("softmax_cols_kernel");
}

}  // namespace

void softmax(const Launch& L, const Tensor& out, const Tensor& x, int axis) {
  if (x.numel() == 0) return;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= x.shape[size_t(i)];
  for (int i = axis + 1; i < x.rank(); i++) inner *= x.shape[size_t(i)];
  const int64_t n = x.shape[size_t(axis)];
  dispatch_float(x.dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    if (inner == 1)
      softmax_rows_cuda<T>(L, out.data<T>(), x.data<T>(), outer, n);
    else
      softmax_cols_cuda<T>(L, out.data<T>(), x.data<T>(), outer, n, inner);
  });
}

}  // namespace ignis::cuda
