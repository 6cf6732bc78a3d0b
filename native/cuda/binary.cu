// add and mul with numpy broadcasting on CUDA (cpu::binary semantics). As on the CPU, the shapes
// are first reduced to the plan of core/broadcast.h (out's dims without size-1 dims, neighbours
// coalesced, a's and b's element strides, 0 where broadcast); the plan picks the kernel: one flat
// pass when a and b cover out alike, one when an operand is a scalar, one when it is a row
// repeated along the leading dims (a bias or residual [..., N] on [M, N]), and a strided walk for
// the rest.
#include <string>
#include <vector>

#include "../core/broadcast.h"
#include "common.cuh"

namespace ignis::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDims = 8;  // dims of a plan the strided kernel takes

template <BinaryOp OP>
__device__ __forceinline__ float apply_op(float a, float b) {
  if constexpr (OP == BinaryOp::add)
    return a + b;
  else
    return a * b;
}

// How the flat kernel indexes b for out[i] (a is always a[i]).
enum class BMode { same, scalar, row };  // b[i], b[0], b[i % inner]

// out, a [n]; b [n], [1] or [inner] per mode. Groups of W elements (W == 1, or a 16-byte pack
// when every pointer is aligned and, for rows, inner % W == 0, so a group never wraps around
// b's end); the n % W tail elements one per thread. For rows, the column of b is carried
// from group to group (col += stride W mod inner) instead of a division per group.
template <class T, BinaryOp OP, BMode MODE, int W>
__global__ void binary_flat_kernel(T* out, const T* a, const T* b, int64_t n, int64_t inner) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t groups = n / W;
  int64_t col = 0, step = 0;
  if constexpr (MODE == BMode::row) {
    col = (tid * W) % inner;
    step = (stride * W) % inner;
  }
  float bs = 0.f;
  if constexpr (MODE == BMode::scalar) bs = to_f32(b[0]);
  for (int64_t g = tid; g < groups; g += stride) {
    float fa[W], fb[W];
    load_f32<T, W>(a + g * W, fa);
    if constexpr (MODE == BMode::same) load_f32<T, W>(b + g * W, fb);
    if constexpr (MODE == BMode::row) load_f32<T, W>(b + col, fb);
#pragma unroll
    for (int k = 0; k < W; k++) fa[k] = apply_op<OP>(fa[k], MODE == BMode::scalar ? bs : fb[k]);
    store_f32<T, W>(out + g * W, fa);
    if constexpr (MODE == BMode::row) {
      col += step;
      if (col >= inner) col -= inner;
    }
  }
  if constexpr (W > 1) {
    const int64_t i = groups * W + tid;  // the tail: fewer than W elements
    if (i < n) {
      const int64_t j = MODE == BMode::same ? i : MODE == BMode::row ? i % inner : 0;
      out[i] = from_f32<T>(apply_op<OP>(to_f32(a[i]), to_f32(b[j])));
    }
  }
}

// The plan for the strided kernel, innermost dim first: out's dim d has size[d], and a and b
// step sa[d], sb[d] elements along it. I: uint32_t when out has fewer than 2^31 elements (all
// sizes, strides and offsets then fit), int64_t otherwise.
template <class I>
struct StridedPlan {
  int rank;
  I size[kMaxDims], sa[kMaxDims], sb[kMaxDims];
};

template <class T, BinaryOp OP, class I>
__global__ void binary_strided_kernel(T* out, const T* a, const T* b, StridedPlan<I> p, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I rem = I(i), oa = 0, ob = 0;  // out's flat index -> a's and b's offsets
#pragma unroll
    for (int d = 0; d < kMaxDims; d++) {
      if (d < p.rank) {
        const I q = rem / p.size[d], idx = rem - q * p.size[d];
        oa += idx * p.sa[d];
        ob += idx * p.sb[d];
        rem = q;
      }
    }
    out[i] = from_f32<T>(apply_op<OP>(to_f32(a[oa]), to_f32(b[ob])));
  }
}

// ---- launchers ----

template <class T, BinaryOp OP, BMode MODE>
void binary_flat_cuda(const Launch& L, T* out, const T* a, const T* b, int64_t n, int64_t inner) {
  constexpr int V = kPack<T>;
  const bool vec = aligned16(out) && aligned16(a) && (MODE == BMode::scalar || aligned16(b)) &&
                   (MODE != BMode::row || inner % V == 0);
  if (vec) {
    binary_flat_kernel<T, OP, MODE, V>
        <<<grid_stride_blocks(L, n, V, kThreads), kThreads, 0, stream_of(L)>>>(out, a, b, n, inner);
  } else {
    binary_flat_kernel<T, OP, MODE, 1>
        <<<grid_stride_blocks(L, n, 1, kThreads), kThreads, 0, stream_of(L)>>>(out, a, b, n, inner);
  }
  check_launch("binary_flat_kernel");
}

template <class T, BinaryOp OP, class I>
void binary_strided_cuda(const Launch& L, T* out, const T* a, const T* b, const BroadcastPlan& plan, int64_t n) {
  StridedPlan<I> p{};
  p.rank = int(plan.size.size());
  for (int d = 0; d < p.rank; d++) {  // innermost first
    const size_t src = size_t(p.rank - 1 - d);
    p.size[d] = I(plan.size[src]);
    p.sa[d] = I(plan.stride_a[src]);
    p.sb[d] = I(plan.stride_b[src]);
  }
  binary_strided_kernel<T, OP, I>
      <<<grid_stride_blocks(L, n, 1, kThreads), kThreads, 0, stream_of(L)>>>(out, a, b, p, n);
  check_launch("binary_strided_kernel");
}

template <class T, BinaryOp OP>
void binary_cuda(const Launch& L, T* out, const T* a, const T* b, const BroadcastPlan& p, int64_t n) {
  const size_t r = p.size.size();
  const std::vector<int64_t>& sa = p.stride_a;
  const std::vector<int64_t>& sb = p.stride_b;
  // add and mul commute (bit for bit in IEEE arithmetic), so a broadcast a swaps with b.
  if (r == 1 && sa[0] == 1 && sb[0] == 1) return binary_flat_cuda<T, OP, BMode::same>(L, out, a, b, n, 1);
  if (r == 1 && sa[0] == 1 && sb[0] == 0) return binary_flat_cuda<T, OP, BMode::scalar>(L, out, a, b, n, 1);
  if (r == 1 && sa[0] == 0 && sb[0] == 1) return binary_flat_cuda<T, OP, BMode::scalar>(L, out, b, a, n, 1);
  if (r == 2) {
    const int64_t inner = p.size[1];
    const bool a_full = sa[0] == inner && sa[1] == 1, b_full = sb[0] == inner && sb[1] == 1;
    const bool a_row = sa[0] == 0 && sa[1] == 1, b_row = sb[0] == 0 && sb[1] == 1;
    if (a_full && b_row) return binary_flat_cuda<T, OP, BMode::row>(L, out, a, b, n, inner);
    if (a_row && b_full) return binary_flat_cuda<T, OP, BMode::row>(L, out, b, a, n, inner);
  }
  if (r > size_t(kMaxDims))
    fail(ErrorCode::Shape, "binary: the broadcast needs " + std::to_string(r) + " dims after merging; the CUDA kernel takes " +
                               std::to_string(kMaxDims));
  if (n < (int64_t(1) << 31))
    binary_strided_cuda<T, OP, uint32_t>(L, out, a, b, p, n);
  else
    binary_strided_cuda<T, OP, int64_t>(L, out, a, b, p, n);
}

}  // namespace

void binary(const Launch& L, const Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const BroadcastPlan p = make_broadcast_plan(out, a, b);
  dispatch_float(out.dtype, kBinaryOpNames[size_t(op)], [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    if (op == BinaryOp::add)
      binary_cuda<T, BinaryOp::add>(L, o, ap, bp, p, n);
    else
      binary_cuda<T, BinaryOp::mul>(L, o, ap, bp, p, n);
  });
}

}  // namespace ignis::cuda
