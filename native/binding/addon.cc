// Module entry: registers the exports and owns the per-load AddonData. Nothing else.
#include "addon.h"

namespace ignis::binding {

AddonData& addon(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

AddonData::~AddonData() {
  runtime.reset();  // joins the device workers: no read can complete after this
  if (reads) reads.Release();
}

// init(IgnisError): called once by lib/binding.ts before anything else.
static Napi::Value Init(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw type_error(info.Env(), "init: expected the IgnisError class");
  addon(info.Env()).ignis_error = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

static Napi::Object Register(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  data->runtime = std::make_unique<ops::Runtime>();
  data->reads = ReadTsfn::New(env, "ignis.read", 0, 1);
  data->reads.Unref(env);
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  register_tensor(env, exports);
  register_ops(env, exports);
  register_info(env, exports);
  register_graph(env, exports);
  register_file(env, exports);
  return exports;
}

}  // namespace ignis::binding

static Napi::Object InitIgnis(Napi::Env env, Napi::Object exports) {
  return ignis::binding::Register(env, exports);
}
NODE_API_MODULE(ignis, InitIgnis)
