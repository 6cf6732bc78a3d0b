// Entry points of the row-wise and elementwise ops: norms, activations, softmax, rope,
// embedding and the broadcasting binary ops.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../cpu/cpu.h"
#include "check.h"
#include "kernel.h"
#include "launch.h"
#include "ops.h"

namespace ignis::ops {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; i++) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(ErrorCode::Shape, std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                 " do not broadcast (dim " + std::to_string(i) + ": " + std::to_string(da) +
                                 " vs " + std::to_string(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

static void check_row_param(const char* op, const char* what, const Tensor& x, const Tensor& w) {
  check_same_device(op, "x", x, what, w);
  check_same_dtype(op, "x", x, what, w);
  if (w.rank() != 1 || w.dim(0) != x.dim(-1))
    fail_shapes(op, "x", x, what, w, std::string("do not fit: ") + what + " must be [" +
                                         std::to_string(x.dim(-1)) + "] (x's last dim)");
}

Tensor rmsnorm(Runtime& rt, const Tensor& x, const Tensor& weight, float eps) {
  const char* op = "rmsnorm";
  rt.throw_pending(x.device());
  check_float(op, "x", x);
  check_rank(op, "x", x, 1, 8);
  check_row_param(op, "weight", x, weight);
  Tensor out = empty(x.shape, x.dtype, x.device());
  launch(rt, x.device(), {x, weight}, {out}, [out, x, weight, eps](const Exec& e) {
    kernel::rmsnorm(e, out, x, weight, eps);
  });
  return out;
}

Tensor layernorm(Runtime& rt, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  const char* op = "layernorm";
  rt.throw_pending(x.device());
  check_float(op, "x", x);
  check_rank(op, "x", x, 1, 8);
  check_row_param(op, "weight", x, weight);
  check_row_param(op, "bias", x, bias);
  Tensor out = empty(x.shape, x.dtype, x.device());
  launch(rt, x.device(), {x, weight, bias}, {out}, [out, x, weight, bias, eps](const Exec& e) {
    kernel::layernorm(e, out, x, weight, bias, eps);
  });
  return out;
}

Tensor activation(Runtime& rt, const Tensor& x, Activation act) {
  rt.throw_pending(x.device());
  check_float(kActivationNames[size_t(act)], "x", x);
  Tensor out = empty(x.shape, x.dtype, x.device());
  launch(rt, x.device(), {x}, {out}, [out, x, act](const Exec& e) {
    kernel::activation(e, out, x, act);
  });
  return out;
}

Tensor softmax(Runtime& rt, const Tensor& x, int axis) {
  const char* op = "softmax";
  rt.throw_pending(x.device());
  check_float(op, "x", x);
  check_rank(op, "x", x, 1, 8);
  if (axis < 0) axis += x.rank();
  if (axis < 0 || axis >= x.rank())
    fail(ErrorCode::Argument, "softmax: axis out of range for x " + shape_str(x.shape));
  Tensor out = empty(x.shape, x.dtype, x.device());
  launch(rt, x.device(), {x}, {out}, [out, x, axis](const Exec& e) {
    kernel::softmax(e, out, x, axis);
  });
  return out;
}

Tensor argmax(Runtime& rt, const Tensor& x) {
  const char* op = "argmax";
  rt.throw_pending(x.device());
  check_float(op, "x", x);
  check_rank(op, "x", x, 1, 8);
  if (x.dim(-1) < 1 || x.dim(-1) > INT32_MAX)
    fail(ErrorCode::Shape, std::string(op) + ": x " + shape_str(x.shape) + " needs a last axis of 1 to 2^31 - 1 elements");
  Tensor out = empty(Shape(x.shape.begin(), x.shape.end() - 1), DType::i32, x.device());
  launch(rt, x.device(), {x}, {out}, [out, x](const Exec& e) {
    kernel::argmax(e, out, x);
  });
  return out;
}

Tensor sample(Runtime& rt, const Tensor& logits, const SampleParams& p) {
  const char* op = "sample";
  rt.throw_pending(logits.device());
  check_float(op, "logits", logits);
  check_rank(op, "logits", logits, 1, 8);
  if (logits.device().kind != Device::CPU)
    fail(ErrorCode::Device, std::string(op) + ": runs on the CPU; logits are on " + logits.device().name() +
                                " (take the argmax on the device, or sample logits.to('cpu'))");
  if (logits.dim(-1) < 1 || logits.dim(-1) > INT32_MAX)
    fail(ErrorCode::Shape, std::string(op) + ": logits " + shape_str(logits.shape) + " need a last axis of 1 to 2^31 - 1 elements");
  if (!(p.temperature > 0) || !std::isfinite(p.temperature) || p.top_k < 0 || !(p.top_p > 0 && p.top_p <= 1))
    fail(ErrorCode::Argument, std::string(op) + ": temperature must be > 0, topK >= 0 and topP in (0, 1]");
  Tensor out = empty(Shape(logits.shape.begin(), logits.shape.end() - 1), DType::i32, logits.device());
  launch(rt, logits.device(), {logits}, {out}, [out, logits, p](const Exec& e) {
    cpu::sample(e.pool, out, logits, p);
  });
  return out;
}

Tensor rope(Runtime& rt, const Tensor& x, int64_t position, float theta) {
  const char* op = "rope";
  rt.throw_pending(x.device());
  check_float(op, "x", x);
  check_rank(op, "x", x, 4, 4);
  if (x.dim(3) % 2 != 0)
    fail(ErrorCode::Shape, "rope: headDim must be even, got x " + shape_str(x.shape));
  Tensor out = empty(x.shape, x.dtype, x.device());
  launch(rt, x.device(), {x}, {out}, [out, x, position, theta](const Exec& e) {
    kernel::rope(e, out, x, position, theta);
  });
  return out;
}

Tensor embedding(Runtime& rt, const Tensor& ids, const Tensor& table) {
  const char* op = "embedding";
  rt.throw_pending(ids.device());
  if (ids.dtype != DType::i32) fail(ErrorCode::DType, std::string("embedding: ids must be i32, got ") + dtype_name(ids.dtype));
  check_float(op, "table", table);
  check_rank(op, "table", table, 2, 2);
  check_same_device(op, "ids", ids, "table", table);
  Shape out_shape = ids.shape;
  out_shape.push_back(table.dim(1));
  Tensor out = empty(out_shape, table.dtype, table.device());
  launch(rt, ids.device(), {ids, table}, {out}, [out, ids, table](const Exec& e) {
    kernel::embedding(e, out, ids, table);
  });
  return out;
}

Tensor binary(Runtime& rt, const Tensor& a, const Tensor& b, BinaryOp op_kind) {
  const char* op = kBinaryOpNames[size_t(op_kind)];
  rt.throw_pending(a.device());
  check_same_device(op, "a", a, "b", b);
  check_float(op, "a", a);
  check_same_dtype(op, "a", a, "b", b);
  Shape shape = broadcast_shapes(a.shape, b.shape, op);
  Tensor out = empty(shape, a.dtype, a.device());
  launch(rt, a.device(), {a, b}, {out}, [out, a, b, op_kind](const Exec& e) {
    kernel::binary(e, out, a, b, op_kind);
  });
  return out;
}

}  // namespace ignis::ops
