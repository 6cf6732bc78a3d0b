// Shape rules of embedding: a table's rows picked by ids.
#include "op.h"

namespace ignis::ops {

// ids i32 [...], table [V, D] -> [..., D] of the table's dtype
std::vector<Meta> infer_embedding(Infer& c, EmbeddingParams&) {
  c.require_dtype(0, DType::i32);
  c.require_float(1);
  c.require_rank(1, 2, 2);
  Shape out = c.shape(0);
  out.push_back(c.dim(1, 1));
  return {{out, c.dtype(1)}};
}

}  // namespace ignis::ops
