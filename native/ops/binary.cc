// Shape rules of the binary ops (add, mul), numpy broadcasting.
#include "op.h"

namespace ignis::ops {

// a, b -> broadcast(a, b), one float dtype
std::vector<Meta> infer_binary(Infer& c, BinaryParams&) {
  c.require_float(0);
  c.same_dtype(0, 1);
  return {{c.broadcast(c.shape(0), c.shape(1), 0, 1, "do not broadcast"), c.dtype(0)}};
}

}  // namespace ignis::ops
