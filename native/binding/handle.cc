// TensorHandle: the JS object that owns one reference to a core tensor. dispose() drops it at
// once; the GC finalizer is the safety net. Handles are type-tagged, so a foreign object
// passed where a tensor goes is a TypeError, never a bad cast.
#include <cmath>

#include "../core/limits.h"

#include "addon.h"

namespace ignis::binding {

static const napi_type_tag kHandleTag = {0x6a2b9c1e4f7d4a11ULL, 0x9e3c5b7a1d2f4e60ULL};

static constexpr size_t kAccountFrom = size_t(64) << 10;

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TensorHandle", {InstanceMethod<&TensorHandle::Dispose>("dispose")});
  }
  explicit TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
    info.This().As<Napi::Object>().TypeTag(&kHandleTag);
  }
  ~TensorHandle() override { release(); }

  void set(Napi::Env env, Tensor t) {
    tensor_ = std::move(t);
    // Tell V8 about the memory a handle keeps alive, so the GC weighs forgotten tensors; small
    // ones are left out (the call is not free, and they do not move the GC's decisions).
    accounted_ = tensor_.nbytes() >= kAccountFrom ? int64_t(tensor_.nbytes()) : 0;
    if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
    env_ = env;
  }
  const Tensor& tensor() const { return tensor_; }
  bool disposed() const { return !tensor_.defined(); }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }
  // Idempotent: called by dispose() and by the destructor.
  void release() {
    if (!tensor_.defined()) return;
    tensor_ = Tensor{};
    // From a destructor (the GC's finalizer) too, where the environment may be dying: the raw
    // call, whose status is not thrown.
    int64_t unused;
    if (env_ && accounted_) napi_adjust_external_memory(env_, -accounted_, &unused);
    accounted_ = 0;
  }
  Tensor tensor_;
  int64_t accounted_ = 0;
  napi_env env_ = nullptr;
};

Napi::Error ignis_error(Napi::Env env, const Error& e) {
  if (e.code == ErrorCode::Range) {  // as lib/'s argument checks throw it
    Napi::Error err = Napi::RangeError::New(env, e.what());
    err.Set("code", error_code_name(e.code));
    return err;
  }
  AddonData& d = addon(env);
  if (d.ignis_error.IsEmpty()) {
    Napi::Error err = Napi::Error::New(env, e.what());
    err.Set("code", error_code_name(e.code));
    return err;
  }
  Napi::Object obj = d.ignis_error.New({Napi::String::New(env, error_code_name(e.code)),
                                        Napi::String::New(env, e.what())});
  return Napi::Error(env, obj);
}

Napi::Error type_error(Napi::Env env, const std::string& msg) {
  Napi::Error err = Napi::TypeError::New(env, msg);
  err.Set("code", "E_TYPE");
  return err;
}

static Napi::Error range_error(Napi::Env env, const std::string& msg) {
  Napi::Error err = Napi::RangeError::New(env, msg);
  err.Set("code", "E_RANGE");
  return err;
}

Tensor value_tensor(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kHandleTag))
    throw type_error(env, std::string(name) + " must be a tensor");
  TensorHandle* h = TensorHandle::Unwrap(v.As<Napi::Object>());
  if (h->disposed()) throw ignis_error(env, Error(ErrorCode::Disposed, std::string(name) + " was disposed"));
  return h->tensor();
}

Tensor arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return value_tensor(info.Env(), info[i], name);
}

const Tensor* arg_optional_tensor(const Napi::CallbackInfo& info, size_t i, const char* name, Tensor* slot) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  *slot = arg_tensor(info, i, name);
  return slot;
}

Shape arg_shape(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw type_error(info.Env(), "shape must be an array of sizes");
  Napi::Array a = info[i].As<Napi::Array>();
  if (a.Length() > uint32_t(kMaxRank)) throw range_error(info.Env(), "shape has more than " + std::to_string(kMaxRank) + " dimensions");
  Shape s;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a[k];
    if (!v.IsNumber()) throw type_error(info.Env(), "shape must be an array of sizes");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > double(kMaxElements))
      throw range_error(info.Env(), "shape sizes must be whole numbers in [0, 2^40]");
    s.push_back(int64_t(d));
  }
  if (checked_numel(s.data(), s.size()) < 0) throw range_error(info.Env(), "shape " + shape_str(s) + " is too large");
  return s;
}

DType arg_dtype(const Napi::CallbackInfo& info, size_t i) {
  DType t;
  if (!info[i].IsString() || !parse_dtype(info[i].As<Napi::String>().Utf8Value(), &t))
    throw ignis_error(info.Env(), Error(ErrorCode::DType, "unknown dtype"));
  return t;
}

Device arg_device(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw type_error(info.Env(), "device must be a string");
  try {
    return ops::parse_device(info[i].As<Napi::String>().Utf8Value());
  } catch (const Error& e) {
    throw ignis_error(info.Env(), e);
  }
}

double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw type_error(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = arg_number(info, i, name);
  if (!(std::fabs(d) <= 9.0e15) || d != std::floor(d))
    throw range_error(info.Env(), std::string(name) + " must be a whole number");
  return int64_t(d);
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBoolean()) throw type_error(info.Env(), std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) throw type_error(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Object wrap(Napi::Env env, Tensor t) {
  Napi::Object obj = addon(env).handle_class.New({});
  TensorHandle::Unwrap(obj)->set(env, std::move(t));
  return obj;
}

Napi::Array meta_of(Napi::Env env, const Tensor& t) {
  Napi::Array shape = Napi::Array::New(env, t.shape.size());
  for (size_t k = 0; k < t.shape.size(); k++) shape.Set(uint32_t(k), Napi::Number::New(env, double(t.shape[k])));
  Napi::Array r = Napi::Array::New(env, 3);
  r.Set(0u, shape);
  r.Set(1u, Napi::String::New(env, dtype_name(t.dtype)));
  r.Set(2u, Napi::String::New(env, t.device().name()));
  return r;
}

void register_handle_class(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = TensorHandle::Define(env);
  addon(env).handle_class = Napi::Persistent(cls);
}

}  // namespace ignis::binding
