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

// memoryCpu() -> { allocated, reserved, peak } of the host caching allocator (bytes)
static Napi::Value MemoryCpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const host_cache::Stats s = host_cache::stats();
  Napi::Object r = Napi::Object::New(env);
  r.Set("allocated", double(s.allocated));
  r.Set("reserved", double(s.reserved));
  r.Set("peak", double(s.peak));
  return r;
}

// emptyCacheCpu() -> bytes returned to the system
static Napi::Value EmptyCacheCpu(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(host_cache::empty()));
}

void register_info(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("memoryCpu", Napi::Function::New(env, MemoryCpu, "memoryCpu"));
  exports.Set("emptyCacheCpu", Napi::Function::New(env, EmptyCacheCpu, "emptyCacheCpu"));
}

}  // namespace ignis::binding
