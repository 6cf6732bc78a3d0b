// Per-load state of the addon and the helpers every binding file uses to turn JS values into
// core types and ignis errors into JS errors. The binding computes nothing.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>

#include "../core/tensor.h"
#include "../ops/runtime.h"

namespace ignis::binding {

struct ReadJob;
void deliver_read(Napi::Env env, Napi::Function, std::nullptr_t*, ReadJob* job);
using ReadTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, ReadJob, deliver_read>;

// Owned by the env (SetInstanceData), so each worker thread's copy of the addon has its own.
struct AddonData {
  std::unique_ptr<ops::Runtime> runtime;
  Napi::FunctionReference ignis_error;  // lib/errors.ts IgnisError(code, message)
  Napi::FunctionReference handle_class;
  Napi::FunctionReference plan_class;
  Napi::FunctionReference state_class;
  ReadTsfn reads;
  int pending_reads = 0;
  ~AddonData();
};
AddonData& addon(Napi::Env env);

// JS error objects: IgnisError(code, message) for ignis errors; TypeError / RangeError with
// .code E_TYPE / E_RANGE for arguments of the wrong kind.
Napi::Error ignis_error(Napi::Env env, const Error& e);
Napi::Error type_error(Napi::Env env, const std::string& msg);

// Runs fn, turning an ignis::Error it throws into the matching JS exception.
template <class Fn>
Napi::Value guard(const Napi::CallbackInfo& info, Fn&& fn) {
  try {
    return fn();
  } catch (const Error& e) {
    throw ignis_error(info.Env(), e);
  } catch (const std::bad_alloc&) {
    throw ignis_error(info.Env(), Error(ErrorCode::OOM, "out of host memory"));
  }
}

// Argument readers: each throws a TypeError naming the argument when it is of the wrong kind.
Tensor arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* name);
Tensor value_tensor(Napi::Env env, Napi::Value v, const char* name);
inline Tensor value_tensor(Napi::Env env, Napi::Value v, const std::string& name) { return value_tensor(env, v, name.c_str()); }
const Tensor* arg_optional_tensor(const Napi::CallbackInfo& info, size_t i, const char* name, Tensor* slot);
Shape arg_shape(const Napi::CallbackInfo& info, size_t i);
DType arg_dtype(const Napi::CallbackInfo& info, size_t i);
Device arg_device(const Napi::CallbackInfo& info, size_t i);
double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name);
bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* name);

// A promise the device worker settles: settle(error) on the worker hands it to the JS thread,
// which resolves it (with undefined, or with the data a read copied) or rejects it with the
// error. Make it (held by a unique_ptr), pass settle() to the work, and once that work is
// enqueued release it and call armed(), which keeps the event loop alive until delivery.
struct ReadJob {
  Napi::Promise::Deferred deferred;
  Napi::Reference<Napi::ArrayBuffer> buffer;  // a read's destination; empty when only waiting
  DType type = DType::f32;
  size_t count = 0;
  KernelError error;
  bool ready_only = true;  // resolve with undefined, nothing copied

  explicit ReadJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  std::function<void(KernelError)> settle(Napi::Env env);
  void armed(Napi::Env env);
};

// Wraps a core tensor in a new JS handle object.
Napi::Object wrap(Napi::Env env, Tensor t);
// [shape, dtype, device] of a tensor, as lib/tensor.ts's Tensor constructor takes them.
Napi::Array meta_of(Napi::Env env, const Tensor& t);

void register_tensor(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);
void register_info(Napi::Env env, Napi::Object exports);
void register_graph(Napi::Env env, Napi::Object exports);
void register_file(Napi::Env env, Napi::Object exports);

}  // namespace ignis::binding
