// Reading op params from JS objects, and exporting their field names (params.h).
#include "params.h"

#include <cmath>

#include "addon.h"

namespace ignis::binding {
namespace {

template <class Enum, size_t N>
Enum enum_value(Napi::Env env, const std::string& s, const char* what, const char* const (&names)[N]) {
  for (size_t k = 0; k < N; k++)
    if (s == names[k]) return Enum(k);
  Napi::Error err = Napi::RangeError::New(env, std::string("unknown ") + what + " '" + s + "'");
  err.Set("code", "E_RANGE");
  throw err;
}

struct Reader {
  Napi::Env env;
  Napi::Object o;
  const char* op;
  Symbols* symbols;

  Napi::Value get(const char* name) {
    Napi::Value v = o.Get(name);
    if (v.IsUndefined()) throw type_error(env, std::string(op) + ": params." + name + " is missing");
    return v;
  }
  double number(const char* name) {
    Napi::Value v = get(name);
    if (!v.IsNumber()) throw type_error(env, std::string(op) + ": params." + name + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  int64_t integer(const char* name, double lo) {
    const double d = number(name);
    if (!(d >= lo && d <= 9007199254740991.0) || d != std::floor(d))
      throw type_error(env, std::string(op) + ": params." + name + " must be a whole number");
    return int64_t(d);
  }
  std::string string(const char* name) {
    Napi::Value v = get(name);
    if (!v.IsString()) throw type_error(env, std::string(op) + ": params." + name + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  }

  void operator()(const char* name, bool& x) {
    Napi::Value v = get(name);
    if (!v.IsBoolean()) throw type_error(env, std::string(op) + ": params." + name + " must be a boolean");
    x = v.As<Napi::Boolean>().Value();
  }
  void operator()(const char* name, float& x) { x = float(number(name)); }
  void operator()(const char* name, double& x) { x = number(name); }
  void operator()(const char* name, int64_t& x) { x = integer(name, -9007199254740991.0); }
  void operator()(const char* name, uint64_t& x) { x = uint64_t(integer(name, 0)); }
  void operator()(const char* name, SymDim& x) {
    Napi::Value v = get(name);
    if (v.IsString() && symbols) x.value = symbols->find(env, v.As<Napi::String>().Utf8Value());
    else x.value = integer(name, 0);
  }
  void operator()(const char* name, Numbers& x) {
    Napi::Value v = get(name);
    const std::string bad = std::string(op) + ": params." + name + " must be an array of finite numbers";
    auto list = std::make_shared<std::vector<double>>();
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
      Napi::Float64Array a = v.As<Napi::Float64Array>();
      list->assign(a.Data(), a.Data() + a.ElementLength());
    } else if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      list->reserve(a.Length());
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value e = a.Get(i);
        if (!e.IsNumber()) throw type_error(env, bad);
        list->push_back(e.As<Napi::Number>().DoubleValue());
      }
    } else {
      throw type_error(env, bad);
    }
    for (double d : *list)
      if (!std::isfinite(d)) throw type_error(env, bad);
    x.v = std::move(list);
  }
  void operator()(const char* name, Activation& x) { x = enum_value<Activation>(env, string(name), "activation", kActivationNames); }
  void operator()(const char* name, BinaryOp& x) { x = enum_value<BinaryOp>(env, string(name), "binary op", kBinaryOpNames); }
  void operator()(const char* name, DType& x) {
    if (!parse_dtype(string(name), &x)) throw ignis_error(env, Error(ErrorCode::DType, std::string(op) + ": unknown dtype"));
  }
};

struct Namer {
  Napi::Object o;
  void set(const char* name, const char* kind) { o.Set(name, kind); }
  void operator()(const char* name, bool&) { set(name, "bool"); }
  void operator()(const char* name, float&) { set(name, "number"); }
  void operator()(const char* name, double&) { set(name, "number"); }
  void operator()(const char* name, int64_t&) { set(name, "int"); }
  void operator()(const char* name, uint64_t&) { set(name, "uint"); }
  void operator()(const char* name, SymDim&) { set(name, "dim"); }
  void operator()(const char* name, Numbers&) { set(name, "numbers"); }
  void operator()(const char* name, Activation&) { set(name, "activation"); }
  void operator()(const char* name, BinaryOp&) { set(name, "binaryOp"); }
  void operator()(const char* name, DType&) { set(name, "dtype"); }
};

}  // namespace

int64_t Symbols::find(Napi::Env env, const std::string& name) {
  for (size_t i = 0; i < names.size(); i++)
    if (names[i] == name) return -1 - int64_t(i);
  if (!grow) throw type_error(env, "unknown symbol '" + name + "'");
  names.push_back(name);
  return -int64_t(names.size());
}

OpParams read_params(Napi::Env env, OpId op, Napi::Value v, Symbols* symbols) {
  if (!v.IsObject()) throw type_error(env, std::string(op_name(op)) + ": params must be an object");
  OpParams p = default_params(op);
  Reader r{env, v.As<Napi::Object>(), op_name(op), symbols};
  std::visit(
      [&](auto& x) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, std::monostate>) x.fields(r);
      },
      p);
  return p;
}

Napi::Object param_fields(Napi::Env env) {
  Napi::Object all = Napi::Object::New(env);
  for (size_t i = 0; i < size_t(OpId::Count); i++) {
    OpParams p = default_params(OpId(i));
    Namer n{Napi::Object::New(env)};
    std::visit(
        [&](auto& x) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, std::monostate>) x.fields(n);
        },
        p);
    all.Set(kOpNames[i], n.o);
  }
  return all;
}

}  // namespace ignis::binding
