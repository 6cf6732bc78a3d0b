// Shape rules of sample: a token drawn from each last-axis row of the logits (CPU only).
#include <cmath>
#include <cstdint>

#include "../core/limits.h"
#include "op.h"

namespace ignis::ops {

// logits [..., V] -> i32 [...]
std::vector<Meta> infer_sample(Infer& c, SampleParams& p) {
  c.require_float(0);
  c.require_rank(0, 1, kMaxRank);
  const int64_t n = c.dim(0, -1);
  if (n >= 0 && (n < 1 || n > INT32_MAX))
    c.fail(ErrorCode::Shape, c.str(0) + " need a last axis of 1 to 2^31 - 1 elements");
  if (!(p.temperature > 0) || !std::isfinite(p.temperature) || p.top_k < 0 || !(p.top_p > 0 && p.top_p <= 1))
    c.fail(ErrorCode::Argument, "temperature must be > 0, topK >= 0 and topP in (0, 1]");
  const Shape& x = c.shape(0);
  return {{Shape(x.begin(), x.end() - 1), DType::i32}};
}

}  // namespace ignis::ops
