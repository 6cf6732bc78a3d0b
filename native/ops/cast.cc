// Shape rules of cast: a float dtype to another (or any dtype to itself: a copy).
#include "op.h"

namespace ignis::ops {

std::vector<Meta> infer_cast(Infer& c, CastParams& p) {
  if (c.dtype(0) != p.dtype && !(is_float(c.dtype(0)) && is_float(p.dtype)))
    c.fail(ErrorCode::DType, std::string("cannot cast ") + dtype_name(c.dtype(0)) + " to " + dtype_name(p.dtype) +
                                 " (casts are between f32, f16 and bf16)");
  return {{c.shape(0), p.dtype}};
}

}  // namespace ignis::ops
