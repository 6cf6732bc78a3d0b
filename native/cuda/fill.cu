// The tensor-making kernels on CUDA (cpu::fill, cpu::randn, cpu::cast semantics): fill (a
// constant of any dtype, its bit pattern made on the host as the CPU makes it), randn (the
// counter-based normal of core/random.h, element for element the CPU's samples) and cast
// (float <-> float conversion in f32, or a device copy).
#include <cmath>
#include <cstring>
#include <type_traits>

#include "../core/random.h"
#include "common.cuh"

namespace ignis::cuda {
namespace {

constexpr int kThreads = 256;

// ---- fill: out [n] = value, as the storage unit U (the dtype's bit pattern) ----

// kVec: out is 16-byte aligned; packs of kPack<U> units first, then the tail units.
template <class U, bool kVec>
__global__ void fill_kernel(U* out, U value, int64_t n) {
  constexpr int V = kVec ? kPack<U> : 1;
  U e[V];
#pragma unroll
  for (int k = 0; k < V; k++) e[k] = value;
  grid_stride<V>(
      n, [&](int64_t p) { store_elems<U, V>(out + p * V, e); }, [&](int64_t i) { out[i] = value; });
}

template <class U>
void fill_cuda(const Launch& L, void* out, int64_t n, U value) {
  U* o = static_cast<U*>(out);
  if (aligned16(out))
    fill_kernel<U, true><<<grid_stride_blocks(L, n, kPack<U>, kThreads), kThreads, 0, stream_of(L)>>>(o, value, n);
  else
    fill_kernel<U, false><<<grid_stride_blocks(L, n, 1, kThreads), kThreads, 0, stream_of(L)>>>(o, value, n);
  check_launch("fill_kernel");
}

// ---- randn: out[i] = randn_at(key, i), rounded to T ----
// kVec: out is 16-byte aligned; each thread makes whole packs of V samples, then the tail.

template <class T, bool kVec>
__global__ void randn_kernel(T* out, uint64_t key, int64_t n) {
  constexpr int V = kVec ? kPack<T> : 1;
  grid_stride<V>(
      n,
      [&](int64_t p) {
        T e[V];
#pragma unroll
        for (int k = 0; k < V; k++) e[k] = from_f32<T>(randn_at(key, uint64_t(p * V + k)));
        store_elems<T, V>(out + p * V, e);
      },
      [&](int64_t i) { out[i] = from_f32<T>(randn_at(key, uint64_t(i))); });
}

template <class T>
void randn_cuda(const Launch& L, T* out, int64_t n, uint64_t key) {
  if (aligned16(out))
    randn_kernel<T, true><<<grid_stride_blocks(L, n, kPack<T>, kThreads), kThreads, 0, stream_of(L)>>>(out, key, n);
  else
    randn_kernel<T, false><<<grid_stride_blocks(L, n, 1, kThreads), kThreads, 0, stream_of(L)>>>(out, key, n);
  check_launch("randn_kernel");
}

// ---- cast: out [n] (O) = x [n] (I) through f32 ----
// kVec: both pointers 16-byte aligned; groups of 8 elements (16 or 32 bytes each side, as one
// or two packs), then the n % 8 tail elements.

constexpr int kCastGroup = 8;

template <class T>
__device__ __forceinline__ void load8_f32(const T* p, float (&f)[kCastGroup]) {
  constexpr int kPacks = int(sizeof(T)) * kCastGroup / 16;  // 1 for 16-bit, 2 for f32
  T e[kCastGroup];
#pragma unroll
  for (int q = 0; q < kPacks; q++) {
    const Pack16 v = load16(p + q * kPack<T>);
    memcpy(reinterpret_cast<char*>(e) + 16 * q, &v, 16);
  }
#pragma unroll
  for (int k = 0; k < kCastGroup; k++) f[k] = to_f32(e[k]);
}

template <class T>
__device__ __forceinline__ void store8_f32(T* p, const float (&f)[kCastGroup]) {
  constexpr int kPacks = int(sizeof(T)) * kCastGroup / 16;
  T e[kCastGroup];
#pragma unroll
  for (int k = 0; k < kCastGroup; k++) e[k] = from_f32<T>(f[k]);
#pragma unroll
  for (int q = 0; q < kPacks; q++) {
    Pack16 v;
    memcpy(&v, reinterpret_cast<const char*>(e) + 16 * q, 16);
    store16(p + q * kPack<T>, v);
  }
}

template <class I, class O, bool kVec>
__global__ void cast_kernel(O* out, const I* x, int64_t n) {
  constexpr int G = kVec ? kCastGroup : 1;
  grid_stride<G>(
      n,
      [&](int64_t g) {
        float f[kCastGroup];
        load8_f32(x + g * kCastGroup, f);
        store8_f32(out + g * kCastGroup, f);
      },
      [&](int64_t i) { out[i] = from_f32<O>(to_f32(x[i])); });
}

template <class I, class O>
void cast_cuda(const Launch& L, O* out, const I* x, int64_t n) {
  if (aligned16(out) && aligned16(x))
    cast_kernel<I, O, true><<<grid_stride_blocks(L, n, kCastGroup, kThreads), kThreads, 0, stream_of(L)>>>(out, x, n);
  else
    cast_kernel<I, O, false><<<grid_stride_blocks(L, n, 1, kThreads), kThreads, 0, stream_of(L)>>>(out, x, n);
  check_launch("cast_kernel");
}

}  // namespace

void fill(const Launch& L, const Tensor& out, double value) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const uint32_t bits = fill_bits(out.dtype, value);  // the CPU's bits, element for element
  switch (dtype_size(out.dtype)) {
    case 4: return fill_cuda<uint32_t>(L, out.raw(), n, bits);
    case 2: return fill_cuda<uint16_t>(L, out.raw(), n, uint16_t(bits));
    default: return fill_cuda<uint8_t>(L, out.raw(), n, uint8_t(bits));
  }
}

void randn(const Launch& L, const Tensor& out, uint64_t seed) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const uint64_t key = randn_key(seed);
  dispatch_float(out.dtype, "randn", [&](auto tag) {
    using T = decltype(tag);
    randn_cuda<T>(L, out.data<T>(), n, key);
  });
}

void cast(const Launch& L, const Tensor& out, const Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return;
  if (out.dtype == x.dtype) {
    if (out.raw() != x.raw())
      IGNIS_CUDA_CHECK(cudaMemcpyAsync(out.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, stream_of(L)));
    return;
  }
  if (!is_float(out.dtype) || !is_float(x.dtype))
    fail(ErrorCode::DType, std::string("cast: no conversion from ") + dtype_name(x.dtype) + " to " +
                               dtype_name(out.dtype));
  dispatch_float(x.dtype, "cast", [&](auto in_tag) {
    dispatch_float(out.dtype, "cast", [&](auto out_tag) {
      using I = decltype(in_tag);
      using O = decltype(out_tag);
      if constexpr (!std::is_same<I, O>::value) cast_cuda<I, O>(L, out.data<O>(), x.data<I>(), n);
    });
  });
}

}  // namespace ignis::cuda
