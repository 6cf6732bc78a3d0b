// Shape rules of argmax over the last axis.
#include <cstdint>

#include "../core/limits.h"
#include "op.h"

namespace ignis::ops {

// x [..., n] -> i32 [...] (n in [1, 2^31 - 1])
std::vector<Meta> infer_argmax(Infer& c, ArgmaxParams&) {
  c.require_float(0);
  c.require_rank(0, 1, kMaxRank);
  const int64_t n = c.dim(0, -1);
  if (n >= 0 && (n < 1 || n > INT32_MAX))
    c.fail(ErrorCode::Shape, c.str(0) + " needs a last axis of 1 to 2^31 - 1 elements");
  const Shape& x = c.shape(0);
  return {{Shape(x.begin(), x.end() - 1), DType::i32}};
}

}  // namespace ignis::ops
