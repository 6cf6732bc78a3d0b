// fill and randn make tensors (ops::full, ops::randn): they take no operands, so there are no
// shape rules to infer; a call that names them is refused.
#include "op.h"

namespace ignis::ops {

std::vector<Meta> infer_fill(Infer& c, FillParams&) { c.fail(ErrorCode::Argument, "makes a tensor: use full()"); }
std::vector<Meta> infer_randn(Infer& c, RandnParams&) { c.fail(ErrorCode::Argument, "makes a tensor: use randn()"); }

}  // namespace ignis::ops
