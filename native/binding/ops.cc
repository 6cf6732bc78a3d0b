// Bindings of the op table: call(op, operands, params) runs any op eagerly, infer(...) applies
// its rules to shapes (the graph builder's), tables() exports the names lib/ uses.
#include "../core/limits.h"
#include "../graph/plan.h"
#include "../ops/op.h"
#include "../ops/ops.h"
#include "addon.h"
#include "params.h"

namespace ignis::binding {

static ops::Runtime& rt(const Napi::CallbackInfo& info) { return *addon(info.Env()).runtime; }

static OpId arg_op(const Napi::CallbackInfo& info, size_t i) {
  const std::string name = arg_string(info, i, "op");
  OpId id;
  if (!ops::find_op(name, &id)) {
    Napi::Error err = Napi::RangeError::New(info.Env(), "unknown op '" + name + "'");
    err.Set("code", "E_RANGE");
    throw err;
  }
  return id;
}

// call(op, operands[], params) -> [handle, meta, handle, meta, ...]: each output's handle and meta
// (none for an in-place op)
static Napi::Value Call(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const OpId op = arg_op(info, 0);
    if (!info[1].IsArray()) throw type_error(env, "operands must be an array");
    Napi::Array a = info[1].As<Napi::Array>();
    const ops::OpDef& d = ops::op_def(op);
    std::vector<Tensor> in;
    in.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (v.IsNull() || v.IsUndefined()) break;  // an absent optional operand ends the list
      in.push_back(value_tensor(env, v, i < uint32_t(ops::kMaxOperands) && d.operands[i] ? d.operands[i] : "operand"));
    }
    OpParams p = read_params(env, op, info[2], nullptr);
    std::vector<Tensor> outs = ops::call(rt(info), std::move(p), in);
    Napi::Array r = Napi::Array::New(env, 2 * outs.size());
    for (size_t i = 0; i < outs.size(); i++) {
      r.Set(uint32_t(2 * i), wrap(env, outs[i]));
      r.Set(uint32_t(2 * i + 1), meta_of(env, outs[i]));
    }
    return r;
  });
}

// infer(op, operands: ({ dims: (number | string)[], dtype, name } | null)[], params, prefix)
//   -> [{ dims, dtype }] per output, or the op's error. String dims are symbols.
static Napi::Value InferShapes(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const OpId op = arg_op(info, 0);
    if (!info[1].IsArray()) throw type_error(env, "operands must be an array");
    Napi::Array a = info[1].As<Napi::Array>();
    if (a.Length() > uint32_t(ops::kMaxOperands)) throw type_error(env, "too many operands");
    Symbols symbols;
    symbols.grow = true;
    Shape shapes[ops::kMaxOperands];
    std::string names[ops::kMaxOperands];
    ops::Operand operands[ops::kMaxOperands];
    int n = 0;
    for (uint32_t i = 0; i < a.Length(); i++, n++) {
      Napi::Value v = a.Get(i);
      if (v.IsNull() || v.IsUndefined()) break;
      if (!v.IsObject()) throw type_error(env, "an operand must be { dims, dtype, name }");
      Napi::Object o = v.As<Napi::Object>();
      Napi::Value dims = o.Get("dims");
      if (!dims.IsArray()) throw type_error(env, "operand dims must be an array");
      Napi::Array da = dims.As<Napi::Array>();
      for (uint32_t k = 0; k < da.Length(); k++) {
        Napi::Value x = da.Get(k);
        if (x.IsString()) shapes[i].push_back(symbols.find(env, x.As<Napi::String>().Utf8Value()));
        else if (x.IsNumber() && x.As<Napi::Number>().DoubleValue() >= 0) shapes[i].push_back(int64_t(x.As<Napi::Number>().DoubleValue()));
        else throw type_error(env, "a dim must be a size or a symbol name");
      }
      DType dt;
      if (!o.Get("dtype").IsString() || !parse_dtype(o.Get("dtype").As<Napi::String>().Utf8Value(), &dt))
        throw type_error(env, "operand dtype");
      names[i] = o.Get("name").IsString() ? o.Get("name").As<Napi::String>().Utf8Value() : std::string("operand");
      operands[i] = {&shapes[i], dt, names[i].c_str()};
    }
    const ops::OpDef& d = ops::op_def(op);
    if (n < d.min_in || n > d.max_in || !d.infer) throw type_error(env, std::string(d.name) + ": wrong operand count");
    OpParams p = read_params(env, op, info[2], &symbols);
    const std::string prefix = arg_string(info, 3, "prefix");
    ops::Infer c(prefix.c_str(), operands, n, &symbols.names);
    const std::vector<ops::Meta> metas = d.infer(c, p);
    Napi::Array r = Napi::Array::New(env, metas.size());
    for (size_t i = 0; i < metas.size(); i++) {
      Napi::Array dims = Napi::Array::New(env, metas[i].shape.size());
      for (size_t k = 0; k < metas[i].shape.size(); k++) {
        const int64_t x = metas[i].shape[k];
        if (x >= 0) dims.Set(uint32_t(k), double(x));
        else dims.Set(uint32_t(k), symbols.names[size_t(-1 - x)]);
      }
      Napi::Object m = Napi::Object::New(env);
      m.Set("dims", dims);
      m.Set("dtype", dtype_name(metas[i].dtype));
      r.Set(uint32_t(i), m);
    }
    return r;
  });
}

template <size_t N>
static Napi::Array names_of(Napi::Env env, const char* const (&names)[N]) {
  Napi::Array a = Napi::Array::New(env, N);
  for (size_t i = 0; i < N; i++) a.Set(uint32_t(i), names[i]);
  return a;
}

// tables() -> the names and limits lib/ is compiled against (lib/native-tables.ts checks them)
static Napi::Value Tables(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object t = Napi::Object::New(env);
  t.Set("ops", names_of(env, kOpNames));
  t.Set("opParams", param_fields(env));
  t.Set("activations", names_of(env, kActivationNames));
  t.Set("binaryOps", names_of(env, kBinaryOpNames));
  t.Set("dtypes", names_of(env, kDTypeNames));
  t.Set("errorCodes", names_of(env, kErrorCodeNames));
  t.Set("bufferKinds", names_of(env, graph::kBufferKindNames));
  t.Set("maxRank", kMaxRank);
  t.Set("maxElements", double(kMaxElements));
  t.Set("panelWidth", double(kPanelWidth));
  return t;
}

void register_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("call", Napi::Function::New(env, Call, "call"));
  exports.Set("infer", Napi::Function::New(env, InferShapes, "infer"));
  exports.Set("tables", Napi::Function::New(env, Tables, "tables"));
}

}  // namespace ignis::binding
