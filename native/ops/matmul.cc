// Entry points of matmul and the int8 weight ops: shape/dtype checks, output allocation, enqueue.
#include "../cpu/cpu.h"
#include "check.h"
#include "kernel.h"
#include "launch.h"
#include "ops.h"

namespace ignis::ops {

static Shape batch_of(const Tensor& t) { return Shape(t.shape.begin(), t.shape.end() - 2); }

Tensor matmul(Runtime& rt, const Tensor& a, const Tensor& b, const Tensor* bias, const MatmulParams& p) {
  const char* op = "matmul";
  rt.throw_pending(a.device());
  check_same_device(op, "a", a, "b", b);
  check_float(op, "a", a);
  check_same_dtype(op, "a", a, "b", b);
  check_rank(op, "a", a, 2, 8);
  check_rank(op, "b", b, 2, 8);
  int64_t M = a.dim(-2), K = a.dim(-1);
  int64_t Kb = p.transpose_b ? b.dim(-1) : b.dim(-2), N = p.transpose_b ? b.dim(-2) : b.dim(-1);
  if (K != Kb)
    fail_shapes(op, "a", a, p.transpose_b ? "b (transposed)" : "b", b,
                "do not fit: a has K = " + std::to_string(K) + ", b has K = " + std::to_string(Kb));
  Shape out_shape;
  try {
    out_shape = broadcast_shapes(batch_of(a), batch_of(b), op);
  } catch (const Error&) {
    fail_shapes(op, "a", a, "b", b, "do not fit: their batch dims (all but the last two) do not broadcast");
  }
  out_shape.push_back(M);
  out_shape.push_back(N);
  if (bias) {
    check_same_device(op, "a", a, "bias", *bias);
    check_same_dtype(op, "a", a, "bias", *bias);
    if (bias->rank() != 1 || bias->dim(0) != N)
      fail(ErrorCode::Shape, "matmul: bias " + shape_str(bias->shape) + " must be [" + std::to_string(N) +
                                 "] for an output " + shape_str(out_shape));
  }
  Tensor out = empty(out_shape, a.dtype, a.device());
  std::vector<Tensor> inputs{a, b};
  Tensor bias_t = bias ? *bias : Tensor{};
  if (bias) inputs.push_back(bias_t);
  launch(rt, a.device(), inputs, {out}, [out, a, b, bias_t, p](const Exec& e) {
    const Tensor* bp = bias_t.defined() ? &bias_t : nullptr;
    kernel::matmul(e, out, a, b, bp, p);
  });
  return out;
}

static void check_group(const char* op, int64_t K, int64_t group) {
  if (group <= 0 || K % group != 0)
    fail(ErrorCode::Argument, std::string(op) + ": groupSize " + std::to_string(group) +
                                  " must be positive and divide K = " + std::to_string(K));
}

std::pair<Tensor, Tensor> quantize(Runtime& rt, const Tensor& w, int64_t group) {
  const char* op = "quantize";
  rt.throw_pending(w.device());
  check_float(op, "w", w);
  check_rank(op, "w", w, 2, 2);
  int64_t N = w.dim(0), K = w.dim(1);
  check_group(op, K, group);
  Tensor q = empty({N, K}, DType::i8, w.device());
  Tensor scales = empty({N, K / group}, DType::f32, w.device());
  launch(rt, w.device(), {w}, {q, scales}, [q, scales, w, group](const Exec& e) {
    kernel::quantize(e, q, scales, w, group);
  });
  return {q, scales};
}

static void check_quantized(const char* op, const Tensor& q, const Tensor& scales, int64_t group) {
  if (q.dtype != DType::i8) fail(ErrorCode::DType, std::string(op) + ": q must be i8, got " + dtype_name(q.dtype));
  if (scales.dtype != DType::f32)
    fail(ErrorCode::DType, std::string(op) + ": scales must be f32, got " + dtype_name(scales.dtype));
  check_rank(op, "q", q, 2, 2);
  check_same_device(op, "q", q, "scales", scales);
  check_group(op, q.dim(1), group);
  if (scales.rank() != 2 || scales.dim(0) != q.dim(0) || scales.dim(1) != q.dim(1) / group)
    fail_shapes(op, "q", q, "scales", scales, "do not fit groupSize " + std::to_string(group));
}

Tensor dequantize(Runtime& rt, const Tensor& q, const Tensor& scales, int64_t group, DType dtype) {
  const char* op = "dequantize";
  rt.throw_pending(q.device());
  check_quantized(op, q, scales, group);
  if (!is_float(dtype)) fail(ErrorCode::DType, std::string(op) + ": dtype must be f32, f16 or bf16");
  Tensor out = empty(q.shape, dtype, q.device());
  launch(rt, q.device(), {q, scales}, {out}, [out, q, scales, group](const Exec& e) {
    kernel::dequantize(e, out, q, scales, group);
  });
  return out;
}

// out [..., N] for x [..., K] times a prepared weight: checks bias [N] (x's device and dtype),
// allocates out and enqueues kernel(exec, out, bias or null), which holds the weight's tensors.
template <class Kernel>
static Tensor weight_product(Runtime& rt, const Tensor& x, int64_t N, const Tensor* bias,
                             std::vector<Tensor> inputs, Kernel kernel) {
  Shape out_shape = x.shape;
  out_shape.back() = N;
  if (bias) {
    check_same_device("matmul", "x", x, "bias", *bias);
    check_same_dtype("matmul", "x", x, "bias", *bias);
    if (bias->rank() != 1 || bias->dim(0) != N)
      fail(ErrorCode::Shape, "matmul: bias " + shape_str(bias->shape) + " must be [" + std::to_string(N) + "]");
  }
  Tensor out = empty(out_shape, x.dtype, x.device());
  Tensor bias_t = bias ? *bias : Tensor{};
  if (bias) inputs.push_back(bias_t);
  launch(rt, x.device(), inputs, {out}, [out, bias_t, kernel](const Exec& e) {
    kernel(e, out, bias_t.defined() ? &bias_t : nullptr);
  });
  return out;
}

Tensor matmul_q(Runtime& rt, const Tensor& x, const Tensor& q, const Tensor& scales, int64_t group,
                const Tensor* bias, Activation act) {
  const char* op = "matmul";
  rt.throw_pending(x.device());
  check_quantized(op, q, scales, group);
  check_same_device(op, "x", x, "q", q);
  check_float(op, "x", x);
  check_rank(op, "x", x, 1, 8);
  int64_t N = q.dim(0), K = q.dim(1);
  if (x.dim(-1) != K)
    fail_shapes(op, "x", x, "quantized weight", q, "do not fit: x has K = " + std::to_string(x.dim(-1)) +
                                                      ", the weight [N, K] has K = " + std::to_string(K));
  return weight_product(rt, x, N, bias, {x, q, scales},
                        [x, q, scales, group, act](const Exec& e, const Tensor& out, const Tensor* b) {
                          kernel::matmul_q(e, out, x, q, scales, group, b, act);
                        });
}

Tensor pack_weight(Runtime& rt, const Tensor& b, bool transpose_b) {
  const char* op = "packWeight";
  rt.throw_pending(b.device());
  if (b.device().kind != Device::CPU)
    fail(ErrorCode::Device, std::string(op) + ": packed weights are the CPU GEMM's layout; on " + b.device().name() +
                                " pass the weight tensor to matmul itself");
  check_float(op, "b", b);
  check_rank(op, "b", b, 2, 2);
  const int64_t K = transpose_b ? b.dim(1) : b.dim(0), N = transpose_b ? b.dim(0) : b.dim(1);
  Tensor out = empty({(N + 15) / 16, K, 16}, DType::f32, b.device());
  launch(rt, b.device(), {b}, {out},
         [out, b, transpose_b](const Exec& e) { cpu::pack_weight(e.pool, out, b, transpose_b); });
  return out;
}

Tensor matmul_packed(Runtime& rt, const Tensor& x, const Tensor& packed, int64_t N, const Tensor* bias,
                     Activation act) {
  const char* op = "matmul";
  rt.throw_pending(x.device());
  check_same_device(op, "x", x, "packed weight", packed);
  check_float(op, "x", x);
  check_rank(op, "x", x, 1, 8);
  if (packed.dtype != DType::f32 || packed.rank() != 3 || packed.dim(2) != 16 || N < 0 ||
      packed.dim(0) != (N + 15) / 16)
    fail(ErrorCode::Argument, std::string(op) + ": the packed weight " + shape_str(packed.shape) +
                                  " is not a packWeight() result for N = " + std::to_string(N));
  const int64_t K = packed.dim(1);
  if (x.dim(-1) != K)
    fail(ErrorCode::Shape, std::string(op) + ": x " + shape_str(x.shape) + " and the packed weight [K, N] = [" +
                               std::to_string(K) + ", " + std::to_string(N) + "] do not fit: x has K = " +
                               std::to_string(x.dim(-1)) + ", the weight has K = " + std::to_string(K));
  return weight_product(rt, x, N, bias, {x, packed}, [x, packed, act](const Exec& e, const Tensor& out, const Tensor* b) {
    cpu::matmul_packed(e.pool, out, x, packed, b, act);
  });
}

}  // namespace ignis::ops
