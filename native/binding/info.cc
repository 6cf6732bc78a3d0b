// info(): what this build and this machine offer (SIMD level, threads, CUDA devices and why
// CUDA is or is not usable).
#include "../core/host_cache.h"
#include "../cpu/simd.h"
#include "addon.h"

#ifdef IGNIS_WITH_CUDA
#include "../cuda/runtime.h"
#endif
#ifndef IGNIS_NO_CUDA_REASON
#define IGNIS_NO_CUDA_REASON "this addon was built without CUDA support"
#endif

namespace ignis::binding {

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("napi", Napi::Number::New(env, NAPI_VERSION));
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("simd", cpu::simd_name());
  cpu.Set("threads", addon(env).runtime->pool().size());
  r.Set("cpu", cpu);
  Napi::Object cuda = Napi::Object::New(env);
  Napi::Array devices = Napi::Array::New(env);
#ifdef IGNIS_WITH_CUDA
  const cuda::Availability& a = cuda::probe();
  cuda.Set("compiled", true);
  cuda.Set("available", a.usable);
  if (!a.usable) cuda.Set("reason", a.reason);
  for (size_t i = 0; i < a.devices.size(); i++) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", a.devices[i].name);
    d.Set("computeCapability", std::to_string(a.devices[i].major) + "." + std::to_string(a.devices[i].minor));
    d.Set("memoryBytes", double(a.devices[i].memory_bytes));
    d.Set("multiprocessors", a.devices[i].sm_count);
    devices.Set(uint32_t(i), d);
  }
#else
  cuda.Set("compiled", false);
  cuda.Set("available", false);
  cuda.Set("reason", IGNIS_NO_CUDA_REASON);
#endif
  cuda.Set("devices", devices);
  r.Set("cuda", cuda);
  return r;
}

// memory(device) -> { allocated, reserved, peak } of the device's caching allocator (bytes)
static Napi::Value Memory(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Device d = arg_device(info, 0);
    double allocated = 0, reserved = 0, peak = 0;
    if (d.kind == Device::CPU) {
      const host_cache::Stats s = host_cache::stats();
      allocated = double(s.allocated), reserved = double(s.reserved), peak = double(s.peak);
    } else {
      addon(env).runtime->queue(d);  // E_DEVICE, saying why, for a device that is not usable
#ifdef IGNIS_WITH_CUDA
      const cuda::MemoryStats s = cuda::memory(d.index);
      allocated = double(s.allocated), reserved = double(s.reserved), peak = double(s.peak);
#endif
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("allocated", allocated);
    r.Set("reserved", reserved);
    r.Set("peak", peak);
    return r;
  });
}

// emptyCache(device) -> bytes returned to the system (the CPU's cache, or the CUDA devices')
static Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    const Device d = arg_device(info, 0);
    if (d.kind == Device::CPU) return Napi::Number::New(info.Env(), double(host_cache::empty()));
    addon(info.Env()).runtime->queue(d);
    double freed = 0;
#ifdef IGNIS_WITH_CUDA
    const int64_t before = cuda::memory(d.index).reserved;
    cuda::empty_cache();
    freed = double(before - cuda::memory(d.index).reserved);
#endif
    return Napi::Number::New(info.Env(), freed);
  });
}

void register_info(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("memory", Napi::Function::New(env, Memory, "memory"));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache, "emptyCache"));
}

}  // namespace ignis::binding
