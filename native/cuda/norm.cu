// rmsnorm and layernorm on CUDA: x [rows, n] normalized over its last dim, row by row, with
// f32 statistics (cpu::rmsnorm / cpu::layernorm semantics). Short rows share a warp (4 to 32
// lanes each), long rows get a block; rows that start 16-byte aligned move as 16-byte packs
// (the row layout is rows.cuh's).
#include "rows.cuh"

namespace ignis::cuda {
namespace {

// ---- rmsnorm: out = x / sqrt(mean(x^2) + eps) * w ----

template <class T, int kRowThreads, bool kVec>
__global__ void __launch_bounds__(1024) rmsnorm_kernel(T* out, const T* x, const T* w, int64_t rows, int64_t n,
                                                       float inv_n, float eps) {
  __shared__ float smem[32];
  constexpr int W = kVec ? kPack<T> : 1;  // elements moved at once
  for_each_row<kRowThreads>(rows, n, [&](int64_t r, int64_t len, int t, int nt) {
    const T* xr = x + r * n;  // [n]
    T* o = out + r * n;       // [n]
    float ss = 0.f;           // sum x^2
    for_row_elems<T, W>(xr, len, t, nt, [&](float v) { ss = fmaf(v, v, ss); });
    ss = row_reduce<kRowThreads>(ss, smem, Sum{}, 0.f);
    const float inv = rsqrtf(fmaf(ss, inv_n, eps));
    for (int64_t g = t; g < len / W; g += nt) {
      float f[W], gw[W];
      load_f32<T, W>(xr + g * W, f);
      load_f32<T, W>(w + g * W, gw);
#pragma unroll
      for (int k = 0; k < W; k++) f[k] = f[k] * inv * gw[k];
      store_f32<T, W>(o + g * W, f);
    }
  });
}

// ---- layernorm: out = (x - mean) / sqrt(var + eps) * w + b, var biased ----
// Two passes for the statistics (mean, then sum (x - mean)^2), as the CPU: no cancellation
// when |mean| is large against the spread.

template <class T, int kRowThreads, bool kVec>
__global__ void __launch_bounds__(1024) layernorm_kernel(T* out, const T* x, const T* w, const T* b, int64_t rows,
                                                         int64_t n, float inv_n, float eps) {
  __shared__ float smem[32];
  constexpr int W = kVec ? kPack<T> : 1;  // elements moved at once
  for_each_row<kRowThreads>(rows, n, [&](int64_t r, int64_t len, int t, int nt) {
    const T* xr = x + r * n;  // [n]
    T* o = out + r * n;       // [n]
    float s = 0.f;            // sum x
    for_row_elems<T, W>(xr, len, t, nt, [&](float v) { s += v; });
    const float mean = row_reduce<kRowThreads>(s, smem, Sum{}, 0.f) * inv_n;
    float ss = 0.f;  // sum (x - mean)^2
    for_row_elems<T, W>(xr, len, t, nt, [&](float v) {
      const float d = v - mean;
      ss = fmaf(d, d, ss);
    });
    ss = row_reduce<kRowThreads>(ss, smem, Sum{}, 0.f);
    const float rstd = rsqrtf(fmaf(ss, inv_n, eps));
    for (int64_t g = t; g < len / W; g += nt) {
      float f[W], gw[W], gb[W];
      load_f32<T, W>(xr + g * W, f);
      load_f32<T, W>(w + g * W, gw);
      load_f32<T, W>(b + g * W, gb);
#pragma unroll
      for (int k = 0; k < W; k++) f[k] = fmaf((f[k] - mean) * rstd, gw[k], gb[k]);
      store_f32<T, W>(o + g * W, f);
    }
  });
}

template <class T>
void rmsnorm_cuda(const Launch& L, T* out, const T* x, const T* w, int64_t rows, int64_t n, float eps) {
  const bool vec = n % kPack<T> == 0 && aligned16(out) && aligned16(x) && aligned16(w);
  const float inv_n = float(1.0 / double(n));
  launch_rows<T>(L, rows, n, vec, [&](auto vec_tag, auto rt, dim3 grid, dim3 block) {
    rmsnorm_kernel<T, decltype(rt)::value, decltype(vec_tag)::value>
        <<<grid, block, 0, stream_of(L)>>>(out, x, w, rows, n, inv_n, eps);
    check_launch("rmsnorm_kernel");
  });
}

template <class T>
void layernorm_cuda(const Launch& L, T* out, const T* x, const T* w, const T* b, int64_t rows, int64_t n,
                    float eps) {
  const bool vec = n % kPack<T> == 0 && aligned16(out) && aligned16(x) && aligned16(w) && aligned16(b);
  const float inv_n = float(1.0 / double(n));
  launch_rows<T>(L, rows, n, vec, [&](auto vec_tag, auto rt, dim3 grid, dim3 block) {
    layernorm_kernel<T, decltype(rt)::value, decltype(vec_tag)::value>
        <<<grid, block, 0, stream_of(L)>>>(out, x, w, b, rows, n, inv_n, eps);
    check_launch("layernorm_kernel");
  });
}

}  // namespace

void rmsnorm(const Launch& L, const Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  const int64_t n = x.dim(-1);
  if (x.numel() == 0 || n == 0) return;
  dispatch_float(x.dtype, "rmsnorm", [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_cuda<T>(L, out.data<T>(), x.data<T>(), weight.data<T>(), x.numel() / n, n, eps);
  });
}

void layernorm(const Launch& L, const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
               float eps) {
  const int64_t n = x.dim(-1);
  if (x.numel() == 0 || n == 0) return;
  dispatch_float(x.dtype, "layernorm", [&](auto tag) {
    using T = decltype(tag);
    layernorm_cuda<T>(L, out.data<T>(), x.data<T>(), weight.data<T>(), bias.data<T>(), x.numel() / n, n, eps);
  });
}

}  // namespace ignis::cuda
