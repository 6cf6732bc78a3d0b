// Shape rules of rope, the rotary position embedding (rotate-half form).
#include "op.h"

namespace ignis::ops {

// x [B, S, H, D] (D fixed and even) -> same
std::vector<Meta> infer_rope(Infer& c, RopeParams&) {
  c.require_float(0);
  c.require_rank(0, 4, 4);
  if (c.dim(0, 3) < 0 || c.dim(0, 3) % 2 != 0) c.fail(ErrorCode::Shape, "headDim must be even, got " + c.str(0));
  return {{c.shape(0), c.dtype(0)}};
}

}  // namespace ignis::ops
