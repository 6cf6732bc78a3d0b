// Bindings that make, move and read tensors. read() is the one synchronization point: it
// returns a promise that a device worker settles through a thread-safe function.
#include <cstdlib>

#include "../ops/ops.h"
#include "addon.h"

namespace ignis::binding {

void register_handle_class(Napi::Env env, Napi::Object exports);

// fromData(typedArray, dtype, shape, device)
static Napi::Value FromData(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray()) throw type_error(env, "data must be a TypedArray");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    DType dtype = arg_dtype(info, 1);
    Shape shape = arg_shape(info, 2);
    Device device = arg_device(info, 3);
    DType src;
    switch (arr.TypedArrayType()) {
      case napi_float32_array: src = DType::f32; break;
      case napi_int32_array: src = DType::i32; break;
      case napi_int8_array: src = DType::i8; break;
      default: throw type_error(env, "data must be a Float32Array, Int32Array or Int8Array");
    }
    if (int64_t(arr.ElementLength()) != shape_numel(shape))
      fail(ErrorCode::Shape, "data has " + std::to_string(arr.ElementLength()) + " elements but shape " +
                                 shape_str(shape) + " needs " + std::to_string(shape_numel(shape)));
    const char* base = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    return wrap(env, ops::from_host(*addon(env).runtime, base, src, shape, dtype, device));
  });
}

// fromBytes(bytes: TypedArray, srcDtype, dtype, shape, device): little-endian elements of
// srcDtype (f16/bf16 as their bits) -> a dtype tensor, converted natively (float <-> float)
static Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray()) throw type_error(env, "bytes must be a TypedArray");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    DType src = arg_dtype(info, 1), dtype = arg_dtype(info, 2);
    Shape shape = arg_shape(info, 3);
    Device device = arg_device(info, 4);
    const size_t bytes = arr.ByteLength();
    if (bytes != size_t(shape_numel(shape)) * dtype_size(src))
      fail(ErrorCode::Shape, std::to_string(bytes) + " bytes do not hold " + shape_str(shape) + " " + dtype_name(src));
    const char* base = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    return wrap(env, ops::from_host(*addon(env).runtime, base, src, shape, dtype, device));
  });
}

// full(shape, dtype, device, value)
static Napi::Value Full(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Shape shape = arg_shape(info, 0);
    DType dtype = arg_dtype(info, 1);
    Device device = arg_device(info, 2);
    double value = arg_number(info, 3, "value");
    return wrap(info.Env(), ops::full(*addon(info.Env()).runtime, shape, dtype, device, value));
  });
}

// randn(shape, dtype, device, seed)
static Napi::Value Randn(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Shape shape = arg_shape(info, 0);
    DType dtype = arg_dtype(info, 1);
    Device device = arg_device(info, 2);
    int64_t seed = arg_int(info, 3, "seed");
    return wrap(info.Env(), ops::randn(*addon(info.Env()).runtime, shape, dtype, device, uint64_t(seed)));
  });
}

static Napi::Value Reshape(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x");
    return wrap(info.Env(), ops::reshape(x, arg_shape(info, 1)));
  });
}

static Napi::Value To(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Tensor x = arg_tensor(info, 0, "x");
    return wrap(info.Env(), ops::to_device(*addon(info.Env()).runtime, x, arg_device(info, 1)));
  });
}

std::function<void(KernelError)> ReadJob::settle(Napi::Env env) {
  ReadTsfn tsfn = addon(env).reads;
  return [tsfn, job = this](KernelError e) mutable {
    job->error = std::move(e);
    tsfn.NonBlockingCall(job);
  };
}

void ReadJob::armed(Napi::Env env) {
  AddonData& d = addon(env);
  if (d.pending_reads++ == 0) d.reads.Ref(env);
}

// Settles a read's promise with its data or its error (the JS thread).
static void settle_read(Napi::Env env, ReadJob& job) {
  AddonData& d = addon(env);
  if (--d.pending_reads == 0) d.reads.Unref(env);
  if (job.error) {
    job.deferred.Reject(ignis_error(env, *job.error).Value());
    return;
  }
  if (job.ready_only) {
    job.deferred.Resolve(env.Undefined());
    return;
  }
  Napi::ArrayBuffer buf = job.buffer.Value();
  Napi::Value out;
  switch (job.type) {  // read_type(): floats are read as f32
    case DType::i8: out = Napi::Int8Array::New(env, job.count, buf, 0); break;
    case DType::i32: out = Napi::Int32Array::New(env, job.count, buf, 0); break;
    case DType::f32:
    case DType::f16:
    case DType::bf16:
    case DType::Count: out = Napi::Float32Array::New(env, job.count, buf, 0); break;
  }
  job.deferred.Resolve(out);
}

// Runs on the JS thread once the device worker has filled the buffer (or failed). Called by the
// thread-safe function, outside any N-API callback wrapper: in an environment being torn down (a
// terminated worker) any N-API call may fail, and nothing it throws may leave, or std::terminate
// would end the whole process.
void deliver_read(Napi::Env env, Napi::Function, std::nullptr_t*, ReadJob* job) {
  std::unique_ptr<ReadJob> owned(job);
  if (!env) return;  // the env is going away
  try {
    settle_read(env, *job);
  } catch (...) {  // the environment is dying: no one is left to settle the promise for
  }
}

// Frees a read's external buffer (the GC's finalizer; hint: its byte count).
static void free_read_buffer(napi_env env, void* data, void* hint) {
  std::free(data);
  int64_t unused;  // may run in a dying environment: the status is not thrown
  napi_adjust_external_memory(env, -int64_t(reinterpret_cast<uintptr_t>(hint)), &unused);
}

// The ArrayBuffer a read fills. V8 ends the process when it cannot allocate one, so large buffers
// are allocated here first, where a failure is E_OOM, and handed to V8 as external memory. Node
// 20 hands JS at most 4 GiB in one buffer: a larger read is E_RANGE (read a slice of it).
static Napi::ArrayBuffer read_buffer(Napi::Env env, size_t count, size_t elem) {
  constexpr size_t kMaxBytes = size_t(1) << 32;       // Node 20's buffer.constants.MAX_LENGTH
  constexpr size_t kExternalFrom = size_t(64) << 20;  // smaller buffers: V8's own allocator
  const size_t bytes = count * elem;  // count <= 2^40 (core/limits.h): no overflow
  if (bytes > kMaxBytes)
    throw ignis_error(env, Error(ErrorCode::Range, "a read of " + std::to_string(count) + " elements (" + std::to_string(bytes) +
                                                       " bytes) is past the 4 GiB Node hands JS in one buffer; read a slice"));
  if (bytes < kExternalFrom) return Napi::ArrayBuffer::New(env, bytes);
  void* p = std::calloc(bytes, 1);
  if (!p) throw ignis_error(env, Error(ErrorCode::OOM, "out of host memory for a read of " + std::to_string(bytes) + " bytes"));
  // The raw call: where creation fails, Node itself runs the finalizer (freeing p), which
  // node-addon-api's wrapper would then free a second time.
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, bytes, free_read_buffer, reinterpret_cast<void*>(uintptr_t(bytes)), &ab) != napi_ok)
    throw ignis_error(env, Error(ErrorCode::OOM, "could not hand a read of " + std::to_string(bytes) + " bytes to JS"));
  int64_t unused;
  napi_adjust_external_memory(env, int64_t(bytes), &unused);
  return Napi::ArrayBuffer(env, ab);
}

// read(handle, readyOnly) -> Promise<Float32Array | Int8Array | Int32Array>, or with readyOnly
// a Promise<undefined> once the op that produces the tensor has run (nothing is copied)
static Napi::Value Read(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Tensor x = arg_tensor(info, 0, "tensor");
    const bool ready_only = arg_bool(info, 1, "readyOnly");
    auto job = std::make_unique<ReadJob>(env);  // the worker's once enqueued
    void* dst = nullptr;
    if (!ready_only) {
      // The worker writes straight into the ArrayBuffer the promise resolves with; JS cannot
      // see it until then, and the reference keeps it alive meanwhile.
      job->type = ops::read_type(x.dtype);
      job->count = size_t(x.numel());
      job->ready_only = false;
      Napi::ArrayBuffer buf = read_buffer(env, job->count, dtype_size(job->type));
      job->buffer = Napi::Persistent(buf);
      dst = buf.Data();
    }
    Napi::Promise promise = job->deferred.Promise();
    try {
      ops::read(*addon(env).runtime, x, dst, job->settle(env));
    } catch (...) {  // not queued: settle the promise JS never saw, so N-API frees it
      job->deferred.Resolve(env.Undefined());
      throw;
    }
    job.release()->armed(env);
    return promise;
  });
}

// clearErrors(handles[]): the tensors' errors cleared, in queue order
static Napi::Value ClearErrors(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) throw type_error(env, "clearErrors needs an array of tensors");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<Tensor> xs;
    for (uint32_t i = 0; i < a.Length(); i++) xs.push_back(value_tensor(env, a.Get(i), "tensor"));
    ops::clear_errors(*addon(env).runtime, xs);
    return env.Undefined();
  });
}

void register_tensor(Napi::Env env, Napi::Object exports) {
  register_handle_class(env, exports);
  exports.Set("fromData", Napi::Function::New(env, FromData, "fromData"));
  exports.Set("fromBytes", Napi::Function::New(env, FromBytes, "fromBytes"));
  exports.Set("full", Napi::Function::New(env, Full, "full"));
  exports.Set("randn", Napi::Function::New(env, Randn, "randn"));
  exports.Set("reshape", Napi::Function::New(env, Reshape, "reshape"));
  exports.Set("to", Napi::Function::New(env, To, "to"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("clearErrors", Napi::Function::New(env, ClearErrors, "clearErrors"));
}

}  // namespace ignis::binding
