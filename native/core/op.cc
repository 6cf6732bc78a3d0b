// Default params of each op, from the op list.
#include "op.h"

namespace ignis {

OpParams default_params(OpId op) {
  switch (op) {
#define IGNIS_X(name, P) \
  case OpId::name: return OpParams(std::in_place_type<P>);
    IGNIS_OPS(IGNIS_X)
#undef IGNIS_X
    case OpId::Count: break;
  }
  return OpParams(std::in_place_type<std::monostate>);
}

}  // namespace ignis
