// info(), memory(), emptyCache(): what this build and this machine offer, as ops::info and the
// backends report it.
#include "../ops/ops.h"
#include "addon.h"

namespace ignis::binding {

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ops::Info in = ops::info(*addon(env).runtime);
  Napi::Object r = Napi::Object::New(env);
  r.Set("napi", Napi::Number::New(env, NAPI_VERSION));
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("simd", in.simd);
  cpu.Set("threads", in.threads);
  r.Set("cpu", cpu);
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", in.cuda_compiled);
  cuda.Set("available", in.cuda.usable);
  if (!in.cuda.usable) cuda.Set("reason", in.cuda.reason);
  Napi::Array devices = Napi::Array::New(env, in.cuda.devices.size());
  for (size_t i = 0; i < in.cuda.devices.size(); i++) {
    const DeviceInfo& d = in.cuda.devices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", d.name);
    o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    o.Set("memoryBytes", double(d.memory_bytes));
    o.Set("multiprocessors", d.multiprocessors);
    if (!d.lost.empty()) o.Set("lost", d.lost);  // the context is gone: every call there throws E_DEVICE_LOST
    devices.Set(uint32_t(i), o);
  }
  cuda.Set("devices", devices);
  r.Set("cuda", cuda);
  return r;
}

// memory(device) -> { allocated, reserved, peak } of the device's caching allocator (bytes)
static Napi::Value Memory(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const MemoryStats s = ops::memory(*addon(env).runtime, arg_device(info, 0));
    Napi::Object r = Napi::Object::New(env);
    r.Set("allocated", double(s.allocated));
    r.Set("reserved", double(s.reserved));
    r.Set("peak", double(s.peak));
    return r;
  });
}

// emptyCache(device) -> bytes returned to the system
static Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), double(ops::empty_cache(*addon(info.Env()).runtime, arg_device(info, 0))));
  });
}

void register_info(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("memory", Napi::Function::New(env, Memory, "memory"));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache, "emptyCache"));
}

}  // namespace ignis::binding
