// quantize and dequantize on CUDA (cpu::quantize / dequantize semantics): floats [N, K] to the
// int8 format of core/quant.h and back, a warp per group. The kernels as they were in quant.cu.
#include "quant.cuh"

namespace ignis::cuda {
namespace {

using namespace quant;

// ---- quantize: per group of w [N, K], scale = max|w| / 127 (1 if 0), q = rint(w / scale) ----

constexpr int kQuantBlock = 256;  // a warp per group

template <class T>
__global__ void __launch_bounds__(kQuantBlock) quantize_kernel(int8_t* q, float* scales, const T* w, int64_t groups,
                                                               int K, int group) {
  const int64_t gi = int64_t(blockIdx.x) * (kQuantBlock / kWarp) + threadIdx.x / kWarp;  // n * G + g
  if (gi >= groups) return;  // the whole warp
  const int lane = int(threadIdx.x % kWarp), G = K / group;
  const int64_t off = (gi / G) * K + (gi % G) * group;
  const T* v = w + off;  // [group]
  int8_t* o = q + off;   // [group]
  float amax = 0.f;      // fmaxf skips NaN, as std::max(amax, NaN) does
  for (int k = lane; k < group; k += kWarp) amax = fmaxf(amax, fabsf(to_f32(v[k])));
  amax = warp_max(amax);
  const float scale = quant_scale(amax);  // core/quant.h
  if (lane == 0) scales[gi] = scale;
  for (int k = lane; k < group; k += kWarp) o[k] = quant_value(to_f32(v[k]), scale);
}

template <class T>
void quantize_cuda(int8_t* q, float* scales, const T* w, int64_t N, int K, int group, cudaStream_t s) {
  const int64_t groups = N * (K / group);
  quantize_kernel<T><<<unsigned(ceil_div<int64_t>(groups, kQuantBlock / kWarp)), kQuantBlock, 0, s>>>(
      q, scales, w, groups, K, group);
  check_launch("quantize_kernel");
}

// ---- dequantize: out [N, K] = q * scale ----
// kVec: 16 elements a thread (one q pack, one scale: K % 16 == 0, group % 16 == 0, q and out
// 16-byte aligned); else one. Rows on grid.y (striding past 65535), K along grid.x.

constexpr int kDequantBlock = 256;

template <class T, bool kVec>
__global__ void __launch_bounds__(kDequantBlock) dequantize_kernel(T* out, const int8_t* q, const float* scales,
                                                                   int64_t N, int K, int group) {
  constexpr int E = kVec ? 16 : 1;
  const int G = K / group;
  const int k = (int(blockIdx.x) * kDequantBlock + int(threadIdx.x)) * E;
  if (k >= K) return;
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    const float s = scales[n * G + k / group];
    if constexpr (kVec) {
      const Pack16 p = load16(q + n * K + k);
      float f[16];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        float t[4];
        i8x4_to_f32(p.w[i], t);
#pragma unroll
        for (int e = 0; e < 4; e++) f[4 * i + e] = __fmul_rn(t[e], s);
      }
      T* o = out + n * K + k;
      if constexpr (sizeof(T) == 4) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
          Pack16 v;
#pragma unroll
          for (int e = 0; e < 4; e++) v.w[e] = __float_as_uint(f[4 * i + e]);
          store16(o + 4 * i, v);
        }
      } else {
#pragma unroll
        for (int i = 0; i < 2; i++) {
          Pack16 v;
#pragma unroll
          for (int e = 0; e < 4; e++) v.w[e] = pack2<T>(f[8 * i + 2 * e], f[8 * i + 2 * e + 1]);
          store16(o + 8 * i, v);
        }
      }
    } else {
      out[n * K + k] = from_f32<T>(__fmul_rn(float(q[n * K + k]), s));
    }
  }
}

template <class T>
void dequantize_cuda(T* out, const int8_t* q, const float* scales, int64_t N, int K, int group, cudaStream_t s) {
  const bool vec = K % 16 == 0 && group % 16 == 0 && aligned16(q) && aligned16(out);
  const dim3 grid(unsigned(ceil_div(K, kDequantBlock * (vec ? 16 : 1))), unsigned(std::min<int64_t>(N, 65535)));
  if (vec) dequantize_kernel<T, true><<<grid, kDequantBlock, 0, s>>>(out, q, scales, N, K, group);
  else dequantize_kernel<T, false><<<grid, kDequantBlock, 0, s>>>(out, q, scales, N, K, group);
  check_launch("dequantize_kernel");
}

}  // namespace

void quantize(const Launch& L, const Tensor& q, const Tensor& scales, const Tensor& w, int64_t group) {
  const int64_t K = w.dim(-1), N = K ? w.numel() / K : 0;
  if (N == 0 || K == 0) return;
  quant::check_int("quantize", K, "K");
  dispatch_float(w.dtype, "quantize", [&](auto tag) {
    using T = decltype(tag);
    quantize_cuda<T>(q.data<int8_t>(), scales.data<float>(), static_cast<const T*>(w.raw()), N, int(K), int(group),
                     stream_of(L));
  });
}

void dequantize(const Launch& L, const Tensor& out, const Tensor& q, const Tensor& scales, int64_t group) {
  const int64_t K = q.dim(-1), N = K ? q.numel() / K : 0;
  if (N == 0 || K == 0) return;
  quant::check_int("dequantize", K, "K");
  dispatch_float(out.dtype, "dequantize", [&](auto tag) {
    using T = decltype(tag);
    dequantize_cuda<T>(static_cast<T*>(out.raw()), q.data<int8_t>(), scales.data<float>(), N, int(K), int(group),
                       stream_of(L));
  });
}

}  // namespace ignis::cuda
