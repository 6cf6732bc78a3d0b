// Bindings of compiled graphs: compilePlan(description) -> PlanHandle, planRun, planState,
// planMemory. The description is built by lib/graph/compile.ts; it is read once, at compile.
#include <cmath>

#include "../graph/plan.h"
#include "../ops/op.h"
#include "../ops/ops.h"
#include "addon.h"
#include "params.h"

namespace ignis::binding {

static const napi_type_tag kPlanTag = {0x3f1c8e2a9b7d4c55ULL, 0x81d2e6f04a9c3b17ULL};

class PlanHandle : public Napi::ObjectWrap<PlanHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PlanHandle", {InstanceMethod<&PlanHandle::Dispose>("dispose")});
  }
  explicit PlanHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PlanHandle>(info) {
    info.This().As<Napi::Object>().TypeTag(&kPlanTag);
  }
  std::shared_ptr<graph::Plan> plan;

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    plan.reset();  // queued runs hold what they use
    return info.Env().Undefined();
  }
};

// A model state (its KV caches) as one JS object: a run unwraps one handle, not one per tensor.
static const napi_type_tag kStateTag = {0x5be1d07c2a9e4f31ULL, 0xc4a8f2139d6b7e05ULL};

class StateHandle : public Napi::ObjectWrap<StateHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "StateHandle", {InstanceMethod<&StateHandle::Dispose>("dispose")});
  }
  explicit StateHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StateHandle>(info) {
    info.This().As<Napi::Object>().TypeTag(&kStateTag);
  }
  ~StateHandle() override { release(); }
  void set(Napi::Env env, std::vector<Tensor> t) {
    tensors = std::make_shared<const std::vector<Tensor>>(std::move(t));
    for (const Tensor& x : *tensors) accounted_ += int64_t(x.nbytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
    env_ = env;
  }
  std::shared_ptr<const std::vector<Tensor>> tensors;  // shared with the runs that use them
  bool disposed = false;

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }
  void release() {  // idempotent; queued runs hold what they use
    tensors.reset();
    disposed = true;
    int64_t unused;  // from a destructor too: the raw call, whose status is not thrown
    if (env_ && accounted_) napi_adjust_external_memory(env_, -accounted_, &unused);
    accounted_ = 0;
  }
  int64_t accounted_ = 0;
  napi_env env_ = nullptr;
};

static graph::Plan& arg_plan(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kPlanTag)) throw type_error(info.Env(), "plan must be a compiled plan");
  PlanHandle* h = PlanHandle::Unwrap(v.As<Napi::Object>());
  if (!h->plan) throw ignis_error(info.Env(), Error(ErrorCode::Disposed, "the model was disposed"));
  return *h->plan;
}

// Readers for the description object: a malformed one is a TypeError naming the field.
static Napi::Value field(Napi::Object o, const char* name) {
  if (!o.Has(name)) throw type_error(o.Env(), std::string("graph description: missing ") + name);
  return o.Get(name);
}
static double num(Napi::Value v, const char* what) {
  if (!v.IsNumber()) throw type_error(v.Env(), std::string("graph description: ") + what + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}
static int64_t integer(Napi::Value v, const char* what) {
  const double d = num(v, what);
  if (!(std::fabs(d) <= 9.0e15) || d != std::floor(d))
    throw type_error(v.Env(), std::string("graph description: ") + what + " must be a whole number");
  return int64_t(d);
}
static Napi::Array array(Napi::Value v, const char* what) {
  if (!v.IsArray()) throw type_error(v.Env(), std::string("graph description: ") + what + " must be an array");
  return v.As<Napi::Array>();
}
static std::string str(Napi::Value v, const char* what) {
  if (!v.IsString()) throw type_error(v.Env(), std::string("graph description: ") + what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}
static std::vector<int64_t> ints(Napi::Value v, const char* what) {
  Napi::Array a = array(v, what);
  std::vector<int64_t> r(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) r[i] = integer(a.Get(i), what);
  return r;
}
static DType dtype_of(Napi::Value v) {
  DType t;
  if (!parse_dtype(str(v, "dtype"), &t)) throw type_error(v.Env(), "graph description: unknown dtype");
  return t;
}
template <class Enum, size_t N>
static Enum enum_of(Napi::Value v, const char* what, const char* const (&names)[N]) {
  const std::string s = str(v, what);
  for (size_t k = 0; k < N; k++)
    if (s == names[k]) return Enum(k);
  throw type_error(v.Env(), std::string("graph description: unknown ") + what + " '" + s + "'");
}

// compilePlan(description) -> PlanHandle
static Napi::Value CompilePlan(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw type_error(env, "compilePlan needs a description object");
    Napi::Object d = info[0].As<Napi::Object>();
    graph::PlanSpec spec;
    spec.device = ops::parse_device(str(field(d, "device"), "device"));
    spec.symbol_max = ints(field(d, "symbolMax"), "symbolMax");
    Napi::Array names = array(field(d, "symbolNames"), "symbolNames");
    for (uint32_t i = 0; i < names.Length(); i++) spec.symbol_names.push_back(str(names.Get(i), "symbol name"));
    if (spec.symbol_names.size() != spec.symbol_max.size()) throw type_error(env, "graph description: symbols");
    Symbols symbols;  // a step's symbolic params (rows' count) name the description's symbols
    symbols.names = spec.symbol_names;
    Napi::Array bufs = array(field(d, "buffers"), "buffers");
    for (uint32_t i = 0; i < bufs.Length(); i++) {
      Napi::Value bv = bufs.Get(i);
      if (!bv.IsObject()) throw type_error(env, "graph description: buffer");
      Napi::Object b = bv.As<Napi::Object>();
      graph::Buffer buf;
      buf.kind = enum_of<graph::Buffer::Kind>(field(b, "kind"), "buffer kind", graph::kBufferKindNames);
      buf.index = int(integer(field(b, "index"), "buffer index"));
      buf.offset = integer(field(b, "offset"), "buffer offset");
      buf.dtype = dtype_of(field(b, "dtype"));
      buf.dims = ints(field(b, "dims"), "buffer dims");
      for (int64_t dim : buf.dims)
        if (dim < 0 && size_t(-1 - dim) >= spec.symbol_max.size()) throw type_error(env, "graph description: symbol index");
      spec.buffers.push_back(std::move(buf));
    }
    const int nb = int(spec.buffers.size());
    Napi::Array steps = array(field(d, "steps"), "steps");
    for (uint32_t i = 0; i < steps.Length(); i++) {
      Napi::Value sv = steps.Get(i);
      if (!sv.IsObject()) throw type_error(env, "graph description: step");
      Napi::Object so = sv.As<Napi::Object>();
      graph::Step st;
      OpId op;
      const std::string name = str(field(so, "op"), "op");
      if (!ops::find_op(name, &op)) throw type_error(env, "graph description: unknown op '" + name + "'");
      for (int64_t b : ints(field(so, "in"), "step inputs")) {
        if (b < 0 || b >= nb) throw type_error(env, "graph description: step input out of range");
        st.in.push_back(int(b));
      }
      for (int64_t b : ints(field(so, "out"), "step outputs")) {
        if (b < 0 || b >= nb) throw type_error(env, "graph description: step output out of range");
        st.out.push_back(int(b));
      }
      st.params = read_params(env, op, field(so, "params"), &symbols);
      st.scalar = int(integer(field(so, "scalar"), "step scalar"));
      spec.steps.push_back(std::move(st));
    }
    for (int64_t b : ints(field(d, "inputs"), "inputs")) spec.inputs.push_back(int(b));
    for (int64_t b : ints(field(d, "outputs"), "outputs")) spec.outputs.push_back(int(b));
    Napi::Array in_names = array(field(d, "inputNames"), "inputNames");
    for (uint32_t i = 0; i < in_names.Length(); i++) spec.input_names.push_back(str(in_names.Get(i), "input name"));
    if (spec.input_names.size() != spec.inputs.size()) throw type_error(env, "graph description: inputNames");
    Napi::Array out_names = array(field(d, "outputNames"), "outputNames");
    for (uint32_t i = 0; i < out_names.Length(); i++) spec.output_names.push_back(str(out_names.Get(i), "output name"));
    if (spec.output_names.size() != spec.outputs.size()) throw type_error(env, "graph description: outputNames");
    Napi::Array sc_names = array(field(d, "scalarNames"), "scalarNames");
    for (uint32_t i = 0; i < sc_names.Length(); i++) spec.scalar_names.push_back(str(sc_names.Get(i), "scalar name"));
    Napi::Array ws = array(field(d, "weights"), "weights");
    for (uint32_t i = 0; i < ws.Length(); i++) {
      spec.weights.push_back(value_tensor(env, ws.Get(i), "weight " + std::to_string(i)));
      if (spec.weights.back().device() != spec.device)
        throw ignis_error(env, Error(ErrorCode::Device, "graph: weight " + std::to_string(i) + " is on " +
                                                            spec.weights.back().device().name() + ", the model on " +
                                                            spec.device.name()));
    }
    Napi::Array states = array(field(d, "states"), "states");
    for (uint32_t i = 0; i < states.Length(); i++) {
      Napi::Value sv = states.Get(i);
      if (!sv.IsObject()) throw type_error(env, "graph description: state");
      Napi::Object so = sv.As<Napi::Object>();
      Shape shape;
      for (int64_t x : ints(field(so, "shape"), "state shape")) {
        if (x < 0) throw type_error(env, "graph description: state shape");
        shape.push_back(x);
      }
      spec.states.emplace_back(dtype_of(field(so, "dtype")), shape);
    }
    spec.arena_bytes = integer(field(d, "arenaBytes"), "arenaBytes");
    AddonData& a = addon(env);
    auto plan = std::make_shared<graph::Plan>(*a.runtime, std::move(spec));
    Napi::Object h = a.plan_class.New({});
    PlanHandle::Unwrap(h)->plan = std::move(plan);
    return h;
  });
}

// planRun(plan, inputs[], scalars[], state handle | null, settled) -> [[handle, meta], ...] per
// output, and with settled a last element: a promise that resolves once the run is over (or
// rejects with its error)
static Napi::Value PlanRun(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    graph::Plan& plan = arg_plan(info, 0);
    Napi::Array in = array(info[1], "inputs");
    std::vector<Tensor> inputs;
    for (uint32_t i = 0; i < in.Length(); i++) inputs.push_back(value_tensor(env, in.Get(i), "input " + std::to_string(i)));
    std::vector<int64_t> scalars = ints(info[2], "scalars");
    std::shared_ptr<const std::vector<Tensor>> state;
    if (!info[3].IsNull() && !info[3].IsUndefined()) {
      if (!info[3].IsObject() || !info[3].As<Napi::Object>().CheckTypeTag(&kStateTag))
        throw type_error(env, "state must be a model state");
      StateHandle* h = StateHandle::Unwrap(info[3].As<Napi::Object>());
      if (h->disposed) throw ignis_error(env, Error(ErrorCode::Disposed, "model.run: the state was disposed"));
      state = h->tensors;
    }
    std::unique_ptr<ReadJob> done;  // the worker's once the plan is enqueued
    if (arg_bool(info, 4, "settled")) done = std::make_unique<ReadJob>(env);
    // given outputs: undefined, or one slot per output (a tensor handle, or null for a fresh one)
    std::vector<Tensor> given;
    if (!info[5].IsUndefined()) {
      Napi::Array g = array(info[5], "outputs");
      given.resize(g.Length());
      for (uint32_t i = 0; i < g.Length(); i++)
        if (!g.Get(i).IsNull()) given[i] = value_tensor(env, g.Get(i), "output " + std::to_string(i));
    }
    // [handle, meta] per fresh output (null for a given one), made before the plan is enqueued
    Napi::Array r = Napi::Array::New(env);
    // A run refused by its checks never reaches the worker: its promise, never handed to JS, is
    // settled here, or N-API would keep it for ever (200k bad runs held 38 MiB).
    try {
      plan.run(
        inputs, scalars, state,
        [&](const std::vector<Tensor>& outs) {
          for (size_t i = 0; i < outs.size(); i++) {
            if (i < given.size() && given[i].defined()) {
              r.Set(uint32_t(i), env.Null());
              continue;
            }
            Napi::Array pair = Napi::Array::New(env, 2);
            pair.Set(0u, wrap(env, outs[i]));
            pair.Set(1u, meta_of(env, outs[i]));
            r.Set(uint32_t(i), pair);
          }
          if (done) r.Set(uint32_t(outs.size()), done->deferred.Promise());
        },
        done ? done->settle(env) : nullptr, given.empty() ? nullptr : &given);
    } catch (...) {
      if (done) done->deferred.Resolve(env.Undefined());
      throw;
    }
    if (done) done.release()->armed(env);
    return r;
  });
}

// planState(plan) -> a state handle holding the state tensors (zero-filled)
static Napi::Value PlanState(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    std::vector<Tensor> st = arg_plan(info, 0).make_state();
    Napi::Object h = addon(env).state_class.New({});
    StateHandle::Unwrap(h)->set(env, std::move(st));
    return h;
  });
}

// planStateReset(state): the state's errors (a failed run's mark) cleared, in queue order
static Napi::Value PlanStateReset(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[0].As<Napi::Object>().CheckTypeTag(&kStateTag))
      throw type_error(env, "state must be a model state");
    StateHandle* h = StateHandle::Unwrap(info[0].As<Napi::Object>());
    if (h->disposed) throw ignis_error(env, Error(ErrorCode::Disposed, "modelState.reset: the state was disposed"));
    ops::clear_errors(*addon(env).runtime, *h->tensors);
    return env.Undefined();
  });
}

// planMemory(plan) -> { weights, arena, state } bytes
static Napi::Value PlanMemory(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    graph::Plan& p = arg_plan(info, 0);
    Napi::Object r = Napi::Object::New(env);
    r.Set("weights", double(p.weight_bytes()));
    r.Set("arena", double(p.arena_bytes()));
    r.Set("state", double(p.state_bytes()));
    return r;
  });
}

// planProfile(plan, on | undefined) -> the last profiled run's step times (ns) with their ops
static Napi::Value PlanProfile(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    graph::Plan& p = arg_plan(info, 0);
    if (info[1].IsBoolean()) p.set_profiling(info[1].As<Napi::Boolean>().Value());
    const std::vector<int64_t> t = p.last_profile();
    Napi::Array r = Napi::Array::New(env, t.size());
    for (size_t i = 0; i < t.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", op_name(op_of(p.spec().steps[i].params)));
      o.Set("ns", double(t[i]));
      r.Set(uint32_t(i), o);
    }
    return r;
  });
}

// planProfileTotal(plan) -> [runs, ns]: the profiled runs finished since profiling was turned on
static Napi::Value PlanProfileTotal(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const auto [runs, ns] = arg_plan(info, 0).profile_total();
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, double(runs));
    r.Set(1u, double(ns));
    return r;
  });
}

void register_graph(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = PlanHandle::Define(env);
  addon(env).plan_class = Napi::Persistent(cls);
  addon(env).state_class = Napi::Persistent(StateHandle::Define(env));
  exports.Set("compilePlan", Napi::Function::New(env, CompilePlan, "compilePlan"));
  exports.Set("planRun", Napi::Function::New(env, PlanRun, "planRun"));
  exports.Set("planState", Napi::Function::New(env, PlanState, "planState"));
  exports.Set("planStateReset", Napi::Function::New(env, PlanStateReset, "planStateReset"));
  exports.Set("planMemory", Napi::Function::New(env, PlanMemory, "planMemory"));
  exports.Set("planProfile", Napi::Function::New(env, PlanProfile, "planProfile"));
  exports.Set("planProfileTotal", Napi::Function::New(env, PlanProfileTotal, "planProfileTotal"));
}

}  // namespace ignis::binding
