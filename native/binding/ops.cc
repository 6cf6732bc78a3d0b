// Bindings of the ops: unpack arguments, call the op entry point, wrap its outputs.
#include "../ops/ops.h"
#include "addon.h"

namespace ignis::binding {

template <class Enum, size_t N>
static Enum arg_enum(const Napi::CallbackInfo& info, size_t i, const char* name, const char* const (&names)[N]) {
  std::string s = arg_string(info, i, name);
  for (size_t k = 0; k < N; k++)
    if (s == names[k]) return Enum(k);
  Napi::Error err = Napi::RangeError::New(info.Env(), std::string("unknown ") + name + " '" + s + "'");
  err.Set("code", "E_RANGE");
  throw err;
}

static ops::Runtime& rt(const Napi::CallbackInfo& info) { return *addon(info.Env()).runtime; }

// matmul(a, b, bias|null, transposeB, activation)
static Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor a = arg_tensor(info, 0, "a"), b = arg_tensor(info, 1, "b"), bias_slot;
    const Tensor* bias = arg_optional_tensor(info, 2, "bias", &bias_slot);
    MatmulParams p;
    p.transpose_b = arg_bool(info, 3, "transposeB");
    p.activation = arg_enum<Activation>(info, 4, "activation", kActivationNames);
    return wrap(info.Env(), ops::matmul(rt(info), a, b, bias, p));
  });
}

// packWeight(b, transposeB) -> packed
static Napi::Value PackWeight(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor b = arg_tensor(info, 0, "b");
    return wrap(info.Env(), ops::pack_weight(rt(info), b, arg_bool(info, 1, "transposeB")));
  });
}

// matmulPacked(x, packed, N, bias|null, activation)
static Napi::Value MatmulPacked(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x"), packed = arg_tensor(info, 1, "packed"), bias_slot;
    const Tensor* bias = arg_optional_tensor(info, 3, "bias", &bias_slot);
    Activation act = arg_enum<Activation>(info, 4, "activation", kActivationNames);
    return wrap(info.Env(), ops::matmul_packed(rt(info), x, packed, arg_int(info, 2, "N"), bias, act));
  });
}

// quantize(w, groupSize) -> [q, scales]
static Napi::Value Quantize(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor w = arg_tensor(info, 0, "w");
    auto qs = ops::quantize(rt(info), w, arg_int(info, 1, "groupSize"));
    Napi::Array r = Napi::Array::New(info.Env(), 2);
    r.Set(0u, wrap(info.Env(), qs.first));
    r.Set(1u, wrap(info.Env(), qs.second));
    return r;
  });
}

// dequantize(q, scales, groupSize, dtype)
static Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor q = arg_tensor(info, 0, "q"), scales = arg_tensor(info, 1, "scales");
    return wrap(info.Env(), ops::dequantize(rt(info), q, scales, arg_int(info, 2, "groupSize"), arg_dtype(info, 3)));
  });
}

// matmulQ(x, q, scales, groupSize, bias|null, activation)
static Napi::Value MatmulQ(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x"), q = arg_tensor(info, 1, "q"), scales = arg_tensor(info, 2, "scales");
    Tensor bias_slot;
    const Tensor* bias = arg_optional_tensor(info, 4, "bias", &bias_slot);
    Activation act = arg_enum<Activation>(info, 5, "activation", kActivationNames);
    return wrap(info.Env(), ops::matmul_q(rt(info), x, q, scales, arg_int(info, 3, "groupSize"), bias, act));
  });
}

// attention(q, k, v, causal, scale, kvLen, qPos0)
static Napi::Value Attention(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor q = arg_tensor(info, 0, "q"), k = arg_tensor(info, 1, "k"), v = arg_tensor(info, 2, "v");
    AttentionParams p;
    p.causal = arg_bool(info, 3, "causal");
    p.scale = float(arg_number(info, 4, "scale"));
    p.kv_len = arg_int(info, 5, "kvLen");
    p.q_pos0 = arg_int(info, 6, "qPos0");
    return wrap(info.Env(), ops::attention(rt(info), q, k, v, p));
  });
}

// kvAppend(cacheK, cacheV, k, v, position)
static Napi::Value KvAppend(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor ck = arg_tensor(info, 0, "cache.k"), cv = arg_tensor(info, 1, "cache.v");
    Tensor k = arg_tensor(info, 2, "k"), v = arg_tensor(info, 3, "v");
    ops::kv_append(rt(info), ck, cv, k, v, arg_int(info, 4, "position"));
    return info.Env().Undefined();
  });
}

static Napi::Value Rmsnorm(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x"), w = arg_tensor(info, 1, "weight");
    return wrap(info.Env(), ops::rmsnorm(rt(info), x, w, float(arg_number(info, 2, "eps"))));
  });
}

static Napi::Value Layernorm(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x"), w = arg_tensor(info, 1, "weight"), b = arg_tensor(info, 2, "bias");
    return wrap(info.Env(), ops::layernorm(rt(info), x, w, b, float(arg_number(info, 3, "eps"))));
  });
}

// activation(x, name)
static Napi::Value ActivationOp(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x");
    Activation act = arg_enum<Activation>(info, 1, "activation", kActivationNames);
    return wrap(info.Env(), ops::activation(rt(info), x, act));
  });
}

static Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x");
    return wrap(info.Env(), ops::softmax(rt(info), x, int(arg_int(info, 1, "axis"))));
  });
}

static Napi::Value Argmax(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x");
    return wrap(info.Env(), ops::argmax(rt(info), x));
  });
}

// sample(logits, temperature, topK, topP, seedHi, seedLo, counter): seed as two 32-bit halves
static Napi::Value Sample(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "logits");
    SampleParams p;
    p.temperature = arg_number(info, 1, "temperature");
    p.top_k = arg_int(info, 2, "topK");
    p.top_p = arg_number(info, 3, "topP");
    p.seed = (uint64_t(uint32_t(arg_int(info, 4, "seedHi"))) << 32) | uint32_t(arg_int(info, 5, "seedLo"));
    p.counter = uint64_t(arg_int(info, 6, "counter"));
    return wrap(info.Env(), ops::sample(rt(info), x, p));
  });
}

static Napi::Value Rope(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x");
    return wrap(info.Env(), ops::rope(rt(info), x, arg_int(info, 1, "position"), float(arg_number(info, 2, "theta"))));
  });
}

static Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor ids = arg_tensor(info, 0, "ids"), table = arg_tensor(info, 1, "table");
    return wrap(info.Env(), ops::embedding(rt(info), ids, table));
  });
}

// binary(a, b, op)
static Napi::Value Binary(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor a = arg_tensor(info, 0, "a"), b = arg_tensor(info, 1, "b");
    BinaryOp op = arg_enum<BinaryOp>(info, 2, "op", kBinaryOpNames);
    return wrap(info.Env(), ops::binary(rt(info), a, b, op));
  });
}

void register_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("packWeight", Napi::Function::New(env, PackWeight, "packWeight"));
  exports.Set("matmulPacked", Napi::Function::New(env, MatmulPacked, "matmulPacked"));
  exports.Set("quantize", Napi::Function::New(env, Quantize, "quantize"));
  exports.Set("dequantize", Napi::Function::New(env, Dequantize, "dequantize"));
  exports.Set("matmulQ", Napi::Function::New(env, MatmulQ, "matmulQ"));
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("kvAppend", Napi::Function::New(env, KvAppend, "kvAppend"));
  exports.Set("rmsnorm", Napi::Function::New(env, Rmsnorm, "rmsnorm"));
  exports.Set("layernorm", Napi::Function::New(env, Layernorm, "layernorm"));
  exports.Set("activation", Napi::Function::New(env, ActivationOp, "activation"));
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("argmax", Napi::Function::New(env, Argmax, "argmax"));
  exports.Set("sample", Napi::Function::New(env, Sample, "sample"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("embedding", Napi::Function::New(env, Embedding, "embedding"));
  exports.Set("binary", Napi::Function::New(env, Binary, "binary"));
}

}  // namespace ignis::binding
