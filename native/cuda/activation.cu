// The elementwise activation op on CUDA: out = act(x) through apply_activation (core/activation.h,
// the definitions the CPU uses), in f32 per element; Activation::none is a device copy. A
// grid-stride loop over 16-byte packs when both pointers are aligned, elements otherwise.
#include "../core/activation.h"
#include "common.cuh"

namespace ignis::cuda {
namespace {

constexpr int kThreads = 256;

// x, out [n]. kVec: packs [0, n / V) first, then the n % V tail elements one per thread.
template <class T, Activation A, bool kVec>
__global__ void activation_kernel(T* out, const T* x, int64_t n) {
  constexpr int V = kVec ? kPack<T> : 1;
  grid_stride<V>(
      n,
      [&](int64_t p) {
        T e[V];
        load_elems<T, V>(x + p * V, e);
#pragma unroll
        for (int k = 0; k < V; k++) e[k] = from_f32<T>(apply_activation(A, to_f32(e[k])));
        store_elems<T, V>(out + p * V, e);
      },
      [&](int64_t i) { out[i] = from_f32<T>(apply_activation(A, to_f32(x[i]))); });
}

template <class T, Activation A>
void activation_cuda(const Launch& L, T* out, const T* x, int64_t n) {
  const bool vec = aligned16(out) && aligned16(x);
  const unsigned grid = grid_stride_blocks(L, n, vec ? kPack<T> : 1, kThreads);
  if (vec)
    activation_kernel<T, A, true><<<grid, kThreads, 0, stream_of(L)>>>(out, x, n);
  else
    activation_kernel<T, A, false><<<grid, kThreads, 0, stream_of(L)>>>(out, x, n);
  check_launch("activation_kernel");
}

}  // namespace

void activation(const Launch& L, const Tensor& out, const Tensor& x, Activation act) {
  const int64_t n = x.numel();
  if (n == 0) return;
  if (act == Activation::none) {
    if (out.raw() != x.raw())
      IGNIS_CUDA_CHECK(cudaMemcpyAsync(out.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, stream_of(L)));
    return;
  }
  dispatch_float(x.dtype, kActivationNames[size_t(act)], [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* xp = x.data<T>();
    dispatch_activation(act, [&](auto a) { activation_cuda<T, decltype(a)::value>(L, o, xp, n); });
  });
}

}  // namespace ignis::cuda
