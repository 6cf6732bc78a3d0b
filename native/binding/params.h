// An op's params to and from JS: read from an object by the field names the params struct
// lists (core/op.h fields()), and those names and kinds exported for lib/ to check at load.
// A missing field or one of the wrong kind is a TypeError naming it; an unknown enum name a
// RangeError. Symbol names (a graph's symbolic sizes) resolve through the given table.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../core/op.h"

namespace ignis::binding {

// Symbol names, each the symbol -1 - index; find() adds a name it has not seen when `grow`.
struct Symbols {
  std::vector<std::string> names;
  bool grow = false;
  int64_t find(Napi::Env env, const std::string& name);
};

OpParams read_params(Napi::Env env, OpId op, Napi::Value v, Symbols* symbols);
// { op: { field: kind } } for every op, kind one of bool, number, int, uint, dim, activation,
// binaryOp, dtype.
Napi::Object param_fields(Napi::Env env);

}  // namespace ignis::binding
