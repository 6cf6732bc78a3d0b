// Shape rules of attention (softmax(scale q k^T) v per head, grouped-query) and kv_append
// (k, v written into a cache's rows, in place).
#include <cmath>

#include "op.h"

namespace ignis::ops {

void check_attention(const char* op, const AttentionParams& p, const Shape& q, const Shape& k) {
  // Without a position (q_pos0 < 0) the queries are k's last rows: there must be as many keys.
  if (p.causal && p.q_pos0 < 0 && q[1] >= 0 && k[1] >= 0 && q[1] > k[1])
    fail(ErrorCode::Shape, std::string(op) + ": causal attention needs q's seq <= k's, got q " + shape_str(q) + " and k " + shape_str(k));
}

// q [B, Sq, H, D], k, v [B, Skv, Hk, D] (H a multiple of Hk) -> [B, Sq, H, D]
std::vector<Meta> infer_attention(Infer& c, AttentionParams& p) {
  c.require_float(0);
  c.same_dtype(0, 1);
  c.same_dtype(0, 2);
  c.require_rank(0, 4, 4);
  c.require_rank(1, 4, 4);
  c.require_rank(2, 4, 4);
  if (c.shape(1) != c.shape(2)) c.fail_shapes(1, 2, "must have the same shape");
  if (c.dim(0, 0) != c.dim(1, 0) || c.dim(0, 3) != c.dim(1, 3))
    c.fail_shapes(0, 1, "must agree on batch (dim 0) and headDim (dim 3)");
  const int64_t hq = c.dim(0, 2), hk = c.dim(1, 2);
  if (hq < 0 || hk <= 0 || hq % hk != 0)
    c.fail_shapes(0, 1, "do not fit: q's heads must be a fixed multiple of k's heads");
  const int64_t skv = c.dim(1, 1);
  if (p.kv_len >= 0 && skv >= 0 && p.kv_len > skv)
    c.fail(ErrorCode::Argument, "kv_len " + std::to_string(p.kv_len) + " does not fit " + c.str(1));
  if (p.window < 0) c.fail(ErrorCode::Argument, "window must be >= 0 (0: none), got " + std::to_string(p.window));
  if (p.window > 0 && !p.causal) c.fail(ErrorCode::Argument, "a sliding window needs causal attention");
  if (!(p.softcap >= 0.f) || !std::isfinite(p.softcap)) c.fail(ErrorCode::Argument, "softcap must be a finite number >= 0 (0: none)");
  check_attention(c.prefix(), p, c.shape(0), c.shape(1));
  return {{c.shape(0), c.dtype(0)}};
}

void check_kv_append(const char* op, const KvAppendParams& p, const Shape& cache, const Shape& k) {
  const int64_t seq = k[1], rows = cache[1];
  if (seq < 0 || rows < 0) return;  // symbols: checked at each run
  if (p.position < 0 || p.position + seq > rows)
    fail(ErrorCode::Argument, std::string(op) + ": position " + std::to_string(p.position) + " + " + std::to_string(seq) +
                                  " new rows overflow the KV cache's " + std::to_string(rows) + " rows");
}

// cache k, cache v [B, maxSeq, Hk, D] <- k, v [B, S, Hk, D] at rows [position, position + S)
std::vector<Meta> infer_kv_append(Infer& c, KvAppendParams& p) {
  c.require_float(2);
  c.same_dtype(0, 2);
  c.same_dtype(1, 3);
  c.require_rank(2, 4, 4);
  if (c.shape(2) != c.shape(3)) c.fail_shapes(2, 3, "must have the same shape");
  const Shape &ck = c.shape(0), &k = c.shape(2);
  if (ck.size() != 4 || ck != c.shape(1) || k[0] != ck[0] || k[2] != ck[2] || k[3] != ck[3])
    c.fail_shapes(2, 0, "do not fit: batch, heads and headDim must match");
  check_kv_append(c.prefix(), p, ck, k);
  return {{c.shape(0), c.dtype(0)}, {c.shape(1), c.dtype(1)}};
}

}  // namespace ignis::ops
