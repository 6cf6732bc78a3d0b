// Shape rules of rope, the rotary position embedding (rotate-half form).
#include <cmath>
#include <string>

#include "op.h"

namespace ignis::ops {

// x [B, S, H, D] (D fixed and even) -> same; freqs: none or D/2 of them, each >= 0. positions,
// when given: i32 [B, S], each token's own position (sequences of a batch at different points),
// in place of position + s.
std::vector<Meta> infer_rope(Infer& c, RopeParams& p) {
  c.require_float(0);
  c.require_rank(0, 4, 4);
  if (c.has(1)) {
    c.require_dtype(1, DType::i32);
    c.require_rank(1, 2, 2);
    if (c.dim(1, 0) != c.dim(0, 0) || c.dim(1, 1) != c.dim(0, 1)) c.fail_shapes(1, 0, "must be x's [batch, seq]: a position per token");
    if (p.position != 0) c.fail(ErrorCode::Argument, "takes a position or positions, not both (position " + std::to_string(p.position) + ")");
  }
  const int64_t D = c.dim(0, 3);
  if (D < 0 || D % 2 != 0) c.fail(ErrorCode::Shape, "headDim must be even, got " + c.str(0));
  if (!(p.theta > 0.f) || !std::isfinite(p.theta)) c.fail(ErrorCode::Argument, "theta must be a positive number");
  if (!std::isfinite(p.scale)) c.fail(ErrorCode::Argument, "scale must be a finite number");
  const size_t n = p.freqs.size();
  if (n != 0) {
    if (int64_t(n) != D / 2)
      c.fail(ErrorCode::Shape, "freqs holds " + std::to_string(n) + " frequencies, " + c.str(0) + " needs headDim/2 = " + std::to_string(D / 2));
    if (int64_t(n) > kRopeMaxFreqs)
      c.fail(ErrorCode::Shape, "freqs holds at most " + std::to_string(kRopeMaxFreqs) + " frequencies (headDim " + std::to_string(2 * kRopeMaxFreqs) + "), got " + std::to_string(n));
    for (size_t i = 0; i < n; i++)
      if (!(p.freqs.data()[i] >= 0.0)) c.fail(ErrorCode::Argument, "freqs[" + std::to_string(i) + "] must be >= 0");
  }
  return {{c.shape(0), c.dtype(0)}};
}

}  // namespace ignis::ops
