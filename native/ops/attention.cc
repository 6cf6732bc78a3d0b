// Entry points of attention and the KV cache append.
#include <cmath>

#include "../cpu/cpu.h"
#include "check.h"
#include "kernel.h"
#include "launch.h"
#include "ops.h"

namespace ignis::ops {

Tensor attention(Runtime& rt, const Tensor& q, const Tensor& k, const Tensor& v, AttentionParams p) {
  const char* op = "attention";
  rt.throw_pending(q.device());
  check_float(op, "q", q);
  check_same_dtype(op, "q", q, "k", k);
  check_same_dtype(op, "q", q, "v", v);
  check_same_device(op, "q", q, "k", k);
  check_same_device(op, "q", q, "v", v);
  check_rank(op, "q", q, 4, 4);
  check_rank(op, "k", k, 4, 4);
  check_rank(op, "v", v, 4, 4);
  if (k.shape != v.shape) fail_shapes(op, "k", k, "v", v, "must have the same shape");
  if (q.dim(0) != k.dim(0) || q.dim(3) != k.dim(3))
    fail_shapes(op, "q", q, "k", k, "must agree on batch (dim 0) and headDim (dim 3)");
  if (k.dim(2) == 0 || q.dim(2) % k.dim(2) != 0)
    fail_shapes(op, "q", q, "k", k, "do not fit: q's heads must be a multiple of k's heads");
  if (p.kv_len < 0 || p.kv_len > k.dim(1) || p.q_pos0 < 0)
    fail(ErrorCode::Argument, "attention: kv_len " + std::to_string(p.kv_len) + " does not fit k " + shape_str(k.shape));
  if (!(p.scale > 0.f) || !std::isfinite(p.scale)) p.scale = 1.f / std::sqrt(float(q.dim(3)));
  Tensor out = empty(q.shape, q.dtype, q.device());
  launch(rt, q.device(), {q, k, v}, {out}, [out, q, k, v, p](const Exec& e) {
    kernel::attention(e, out, q, k, v, p);
  });
  return out;
}

void kv_append(Runtime& rt, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k, const Tensor& v,
               int64_t position) {
  const char* op = "attention";
  rt.throw_pending(k.device());
  check_same_dtype(op, "the cache", cache_k, "k", k);
  check_same_dtype(op, "the cache", cache_v, "v", v);
  check_same_device(op, "the cache", cache_k, "k", k);
  check_rank(op, "k", k, 4, 4);
  if (k.shape != v.shape) fail_shapes(op, "k", k, "v", v, "must have the same shape");
  if (cache_k.rank() != 4 || cache_k.shape != cache_v.shape || k.dim(0) != cache_k.dim(0) ||
      k.dim(2) != cache_k.dim(2) || k.dim(3) != cache_k.dim(3))
    fail_shapes(op, "k", k, "the cache", cache_k, "do not fit: batch, heads and headDim must match");
  if (position < 0 || position + k.dim(1) > cache_k.dim(1))
    fail(ErrorCode::Argument, "attention: writing " + std::to_string(k.dim(1)) + " rows at position " +
                                  std::to_string(position) + " overflows the cache's " +
                                  std::to_string(cache_k.dim(1)) + " rows");
  launch(rt, k.device(), {k, v}, {cache_k, cache_v}, [cache_k, cache_v, k, v, position](const Exec& e) {
    kernel::kv_append(e, cache_k, cache_v, k, v, position);
  });
}

}  // namespace ignis::ops
