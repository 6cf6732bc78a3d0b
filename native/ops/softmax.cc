// Shape rules of softmax along one axis.
#include "../core/limits.h"
#include "op.h"

namespace ignis::ops {

// x -> softmax(x) along p.axis (negative: from the end; settled to 0 <= axis < rank here)
std::vector<Meta> infer_softmax(Infer& c, SoftmaxParams& p) {
  c.require_float(0);
  c.require_rank(0, 1, kMaxRank);
  if (p.axis < 0) p.axis += c.rank(0);
  if (p.axis < 0 || p.axis >= c.rank(0)) c.fail(ErrorCode::Argument, "axis out of range for " + c.str(0));
  return {{c.shape(0), c.dtype(0)}};
}

}  // namespace ignis::ops
