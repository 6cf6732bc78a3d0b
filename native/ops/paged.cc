// Shape rules of the paged KV cache's ops: kv_write (new rows into the pools' slots, in place)
// and paged_attention (each query row against its own sequence's rows, through its block
// table). The indices (slots, block ids, sequence indices, positions) are data: a kernel checks
// them as it reads them, and one out of range fails the op's outputs with E_INDEX.
#include <cmath>
#include <string>

#include "op.h"

namespace ignis::ops {

namespace {
// The pools k, v [blocks, blockSize, Hk, D] (operands a, b): float, the same shape and dtype.
void check_pools(Infer& c, int a, int b) {
  c.require_float(a);
  c.same_dtype(a, b);
  c.require_rank(a, 4, 4);
  if (c.shape(a) != c.shape(b)) c.fail_shapes(a, b, "must have the same shape");
}
}  // namespace

// pools k, v [NB, BS, Hk, D] <- k, v [T, Hk, D] at slots i32 [T] (row t to block slots[t] / BS,
// offset slots[t] % BS; a slot < 0 skips its row: a padding row)
std::vector<Meta> infer_kv_write(Infer& c, KvWriteParams&) {
  check_pools(c, 0, 1);
  c.same_dtype(0, 2);
  c.same_dtype(0, 3);
  c.require_rank(2, 3, 3);
  if (c.shape(2) != c.shape(3)) c.fail_shapes(2, 3, "must have the same shape");
  if (c.dim(2, 1) != c.dim(0, 2) || c.dim(2, 2) != c.dim(0, 3))
    c.fail_shapes(2, 0, "do not fit: k [rows, heads, headDim] must match the pool's heads and headDim");
  c.require_dtype(4, DType::i32);
  c.require_rank(4, 1, 1);
  if (c.dim(4, 0) != c.dim(2, 0)) c.fail_shapes(4, 2, "must have one slot per row of k");
  return {{c.shape(0), c.dtype(0)}, {c.shape(1), c.dtype(1)}};
}

// q [T, H, D], pools [NB, BS, Hk, D] (H a multiple of Hk), block tables i32 [S, MB], rows
// i32 [T, 2] (each query row's sequence in [0, S), or -1 for a padding row, and its position:
// it sees its sequence's rows [0, position]) -> [T, H, D]
std::vector<Meta> infer_paged_attention(Infer& c, PagedAttentionParams& p) {
  c.require_float(0);
  c.require_rank(0, 3, 3);
  check_pools(c, 1, 2);
  c.same_dtype(0, 1);
  if (c.dim(0, 2) != c.dim(1, 3)) c.fail_shapes(0, 1, "must agree on headDim");
  const int64_t hq = c.dim(0, 1), hk = c.dim(1, 2);
  if (hq < 0 || hk <= 0 || hq % hk != 0) c.fail_shapes(0, 1, "do not fit: q's heads must be a fixed multiple of the pool's heads");
  c.require_dtype(3, DType::i32);
  c.require_rank(3, 2, 2);
  c.require_dtype(4, DType::i32);
  c.require_rank(4, 2, 2);
  if (c.dim(4, 0) != c.dim(0, 0) || c.dim(4, 1) != 2) c.fail_shapes(4, 0, "must be [q's rows, 2]: each row's sequence and position");
  if (!(p.scale >= 0.f) || !std::isfinite(p.scale)) c.fail(ErrorCode::Argument, "scale must be a finite number >= 0 (0: 1/sqrt(headDim))");
  if (p.window < 0) c.fail(ErrorCode::Argument, "window must be >= 0 (0: none), got " + std::to_string(p.window));
  if (!(p.softcap >= 0.f) || !std::isfinite(p.softcap)) c.fail(ErrorCode::Argument, "softcap must be a finite number >= 0 (0: none)");
  return {{c.shape(0), c.dtype(0)}};
}

}  // namespace ignis::ops
