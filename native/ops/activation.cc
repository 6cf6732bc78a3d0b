// Shape rules of the elementwise activation op (gelu, silu, relu, ...: core/activation.h).
#include "op.h"

namespace ignis::ops {

// x -> act(x), same shape and dtype
std::vector<Meta> infer_activation(Infer& c, ActivationParams&) {
  c.require_float(0);
  return {{c.shape(0), c.dtype(0)}};
}

}  // namespace ignis::ops
