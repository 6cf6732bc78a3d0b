// The op entry points: each checks its arguments (cheaply: the TS layer has validated them
// with friendlier messages), allocates its outputs, enqueues the device's kernel and returns
// at once. The binding calls these; they know nothing of N-API.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "../core/op_params.h"
#include "runtime.h"

namespace ignis::ops {

// --- tensors ---------------------------------------------------------------------------------
// A tensor holding `bytes` (host memory in `src_type` layout, count elements) converted to
// `dtype`: any float src_type for a float dtype (the conversion happens here), else == dtype.
// Copies synchronously, so the caller may reuse its buffer at once.
Tensor from_host(Runtime& rt, const void* src, DType src_type, const Shape& shape, DType dtype,
                 Device device);
Tensor full(Runtime& rt, const Shape& shape, DType dtype, Device device, double value);
Tensor randn(Runtime& rt, const Shape& shape, DType dtype, Device device, uint64_t seed);
Tensor cast(Runtime& rt, const Tensor& x, DType dtype);
Tensor to_device(Runtime& rt, const Tensor& x, Device device);
// A view of x's storage with another shape of the same element count.
Tensor reshape(const Tensor& x, const Shape& shape);
// The element type read() delivers: f32 for float dtypes, the dtype itself otherwise.
DType read_type(DType t);
// Enqueues a copy of x's elements (as read_type) into dst, which must hold x.numel() of them
// and stay valid until done runs (dst null: nothing is copied; done only reports x's state). done(error) runs on the queue's thread: error is null on
// success, or the kernel-time error of the op that produced x.
void read(Runtime& rt, const Tensor& x, void* dst, std::function<void(KernelError)> done);

// --- ops -------------------------------------------------------------------------------------
Tensor matmul(Runtime& rt, const Tensor& a, const Tensor& b, const Tensor* bias, const MatmulParams& p);
// b [K, N] (or [N, K] with transpose_b) -> f32 [ceil(N / 16), K, 16] in the CPU GEMM's panel
// layout, for matmul_packed.
Tensor pack_weight(Runtime& rt, const Tensor& b, bool transpose_b);
// x [..., K] @ B [K, N] with B packed by pack_weight.
Tensor matmul_packed(Runtime& rt, const Tensor& x, const Tensor& packed, int64_t N, const Tensor* bias,
                     Activation act);
// Returns {q (i8 [N, K]), scales (f32 [N, K / group])}.
std::pair<Tensor, Tensor> quantize(Runtime& rt, const Tensor& w, int64_t group);
Tensor dequantize(Runtime& rt, const Tensor& q, const Tensor& scales, int64_t group, DType dtype);
Tensor matmul_q(Runtime& rt, const Tensor& x, const Tensor& q, const Tensor& scales, int64_t group,
                const Tensor* bias, Activation act);
Tensor attention(Runtime& rt, const Tensor& q, const Tensor& k, const Tensor& v, AttentionParams p);
void kv_append(Runtime& rt, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k,
               const Tensor& v, int64_t position);
Tensor rmsnorm(Runtime& rt, const Tensor& x, const Tensor& weight, float eps);
Tensor layernorm(Runtime& rt, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
Tensor activation(Runtime& rt, const Tensor& x, Activation act);
Tensor softmax(Runtime& rt, const Tensor& x, int axis);
// i32 x.shape[:-1]: the index of the largest element along the last axis (the first on ties;
// NaN above every number). E_SHAPE for an empty last axis.
Tensor argmax(Runtime& rt, const Tensor& x);
// i32 logits.shape[:-1]: a token drawn from each last-axis row (CPU only: E_DEVICE elsewhere).
Tensor sample(Runtime& rt, const Tensor& logits, const SampleParams& p);
Tensor rope(Runtime& rt, const Tensor& x, int64_t position, float theta);
Tensor embedding(Runtime& rt, const Tensor& ids, const Tensor& table);
Tensor binary(Runtime& rt, const Tensor& a, const Tensor& b, BinaryOp op);

// Numpy broadcast of two shapes; throws E_SHAPE naming both (and `op`) if they do not fit.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace ignis::ops
