// Shape rules of the norms over the last dim: rmsnorm (x, weight) and layernorm (x, weight, bias).
#include "../core/limits.h"
#include "op.h"

namespace ignis::ops {

// x [..., D], weight [D] -> [..., D]
std::vector<Meta> infer_rmsnorm(Infer& c, RmsnormParams&) {
  c.require_float(0);
  c.require_rank(0, 1, kMaxRank);
  c.row_param(0, 1);
  return {{c.shape(0), c.dtype(0)}};
}

// x [..., D], weight [D], bias [D] -> [..., D]
std::vector<Meta> infer_layernorm(Infer& c, LayernormParams&) {
  c.require_float(0);
  c.require_rank(0, 1, kMaxRank);
  c.row_param(0, 1);
  c.row_param(0, 2);
  return {{c.shape(0), c.dtype(0)}};
}

}  // namespace ignis::ops
