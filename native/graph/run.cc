// Plan::run in its phases: the arguments and the symbols they bind, the outputs (fresh, or the
// caller's), the rules each run checks again, and the queued task that binds the views and runs
// every step (or replays a recording of them).
#include <algorithm>
#include <chrono>

#include "../ops/launch.h"
#include "../ops/op.h"
#include "../ops/ops.h"
#include "plan.h"

namespace ignis::graph {
namespace {

constexpr const char* kOp = "model.run";


// What a queued run holds: the plan's spec and views, and the run's own tensors and integers.
struct Task {
  std::shared_ptr<const PlanSpec> spec;
  std::shared_ptr<Plan::Views> views;
  std::shared_ptr<Plan::Profile> prof;  // null when the run is not profiled
  std::shared_ptr<Recorder> recorder;   // null: the steps run one by one
  std::vector<Tensor> inputs;
  std::shared_ptr<const std::vector<Tensor>> state;
  std::vector<std::pair<int, Tensor>> roots;  // output root buffer -> its tensor
  std::vector<int64_t> sym, scalars;
};

// The run's tensors into the views (its shapes too, when its symbols changed): the task owns the
// views, since runs of one plan are serialized on its queue.
void bind_views(const Task& t, const std::vector<Tensor>& ins, const std::vector<Tensor>& roots) {
  const PlanSpec& spec = *t.spec;
  Plan::Views& v = *t.views;
  std::vector<Tensor>& buf = v.buf;
  static const std::vector<Tensor> kNone;
  const std::vector<Tensor>& state = t.state ? *t.state : kNone;
  if (v.sym != t.sym) {
    for (int b : v.symbolic) {
      const Dims& dims = spec.buffers[size_t(b)].dims;
      Shape& shape = buf[size_t(b)].shape;
      for (size_t d = 0; d < dims.size(); d++) shape[d] = dims[d] >= 0 ? dims[d] : t.sym[size_t(-1 - dims[d])];
    }
    v.sym = t.sym;
  }
  for (size_t i = 0; i < t.roots.size(); i++) {
    Tensor& x = buf[size_t(t.roots[i].first)];
    x.storage = roots[i].storage, x.offset = roots[i].offset;  // a given output may sit at an offset
  }
  for (int b : v.per_run) {
    const Buffer& s = spec.buffers[size_t(b)];
    Tensor& x = buf[size_t(b)];
    switch (s.kind) {
      case Buffer::input: x.storage = ins[size_t(s.index)].storage, x.offset = ins[size_t(s.index)].offset; break;
      case Buffer::state: x.storage = state[size_t(s.index)].storage, x.offset = 0; break;
      case Buffer::view: x.storage = buf[size_t(s.index)].storage, x.offset = buf[size_t(s.index)].offset; break;
      case Buffer::output: break;  // bound above
      case Buffer::weight:
      case Buffer::arena:
      case Buffer::Count: break;  // bound at compile
    }
  }
}

void run_step(const Exec& e, Backend& b, const Step& s, const std::vector<Tensor>& buf, int64_t pos,
              const int64_t* pos_dev) {
  OpParams p = s.params;
  if (s.scalar >= 0) {
    *ops::position_field(p) += pos;
    if (auto* a = std::get_if<AttentionParams>(&p)) a->pos_dev = pos_dev;
  }
  const Tensor* in[ops::kMaxOperands];
  const Tensor* out[2];
  for (size_t k = 0; k < s.in.size(); k++) in[k] = &buf[size_t(s.in[k])];
  for (size_t k = 0; k < s.out.size(); k++) out[k] = &buf[size_t(s.out[k])];
  ops::settle(p, in);
  ops::run_kernel(e, b, p, in, int(s.in.size()), out, int(s.out.size()), s.scalar >= 0 ? pos_dev : nullptr);
}

// The queued task: every step (timed when profiled), or one replay of the recording. A kernel
// error mid-run leaves the caches half written, so they carry the error too.
void execute(const Exec& e, Backend& b, const Task& t) {
  const PlanSpec& spec = *t.spec;
  static const std::vector<Tensor> kNone;
  const std::vector<Tensor>& state = t.state ? *t.state : kNone;
  for (const Tensor& x : state)  // a failed earlier run left the caches unusable
    if (KernelError err = x.storage->error()) {
      for (const auto& r : t.roots) r.second.storage->set_error(err);
      return;
    }
  for (const auto& r : t.roots) r.second.storage->clear_error();  // a given output is rewritten whole
  Plan::Views& v = *t.views;
  struct Release {  // the run's tensors are let go when it ends, even if a kernel throws
    Plan::Views& v;
    ~Release() {
      for (int i : v.per_run) v.buf[size_t(i)].storage.reset();
    }
  } release{v};
  std::vector<Tensor> roots;
  for (const auto& r : t.roots) roots.push_back(r.second);
  bind_views(t, t.inputs, roots);
  const int device = spec.device.index;
  std::vector<int64_t> times;
  if (t.prof) times.reserve(spec.steps.size());
  auto t0 = std::chrono::steady_clock::now();
  try {
    if (t.recorder) {
      t.recorder->run(e, t.sym, state, t.inputs, roots, t.scalars,
                      [&](const std::vector<Tensor>& ins, const std::vector<Tensor>& rts) { bind_views(t, ins, rts); },
                      [&](const Exec& ge, const int64_t* pos_dev) {
                        for (const Step& s : spec.steps)
                          run_step(ge, b, s, v.buf, 0, s.scalar >= 0 ? pos_dev + s.scalar : nullptr);
                      });
    } else {
      for (const Step& s : spec.steps) {
        run_step(e, b, s, v.buf, s.scalar >= 0 ? t.scalars[size_t(s.scalar)] : 0, nullptr);
        if (t.prof) {  // on a device the steps only queue kernels: wait for each
          b.synchronize(device);
          const auto t1 = std::chrono::steady_clock::now();
          times.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
          t0 = t1;
        }
      }
    }
    // Every run waits for its end, so bad data a device kernel found (an id out of range) fails
    // this run and its state, as on the CPU.
    b.finish(e);
  } catch (const Error& err) {
    for (const Tensor& x : state) x.storage->set_error(std::make_shared<const Error>(err));
    throw;
  } catch (...) {
    auto err = std::make_shared<const Error>(ErrorCode::Internal, "a run with this state failed");
    for (const Tensor& x : state) x.storage->set_error(err);
    throw;
  }
  if (t.prof) {
    std::lock_guard<std::mutex> lock(t.prof->mu);
    t.prof->runs++;
    for (int64_t x : times) t.prof->ns += x;
    t.prof->last = std::move(times);
  }
}

}  // namespace

// The symbols, bound from the inputs' shapes (each input checked against its spec on the way).
std::vector<int64_t> Plan::bind_symbols(const std::vector<Tensor>& inputs) const {
  const PlanSpec& spec = *spec_;
  std::vector<int64_t> sym(spec.symbol_max.size(), -1);
  for (size_t i = 0; i < inputs.size(); i++) {
    const Buffer& b = spec.buffers[size_t(spec.inputs[i])];
    const Tensor& t = inputs[i];
    // the message prefix, built only when a check fails (a run is on every decode step's path)
    const auto what = [&] { return std::string(kOp) + ": input '" + spec.input_names[i] + "' "; };
    if (t.device() != spec.device)
      fail(ErrorCode::Device, what() + "is on " + t.device().name() + ", the model on " + spec.device.name());
    if (t.dtype != b.dtype)
      fail(ErrorCode::DType, what() + "is " + dtype_name(t.dtype) + ", the graph wants " + dtype_name(b.dtype));
    bool ok = t.rank() == int(b.dims.size());
    for (size_t d = 0; ok && d < b.dims.size(); d++) {
      const int64_t want = b.dims[d], got = t.shape[d];
      if (want >= 0) {
        ok = got == want;
        continue;
      }
      const size_t s = size_t(-1 - want);
      if (sym[s] >= 0) {
        ok = got == sym[s];
        continue;
      }
      if (got < 1 || got > spec.symbol_max[s])
        fail(ErrorCode::Shape, what() + shape_str(t.shape) + " puts " + spec.symbol_names[s] + " = " + std::to_string(got) +
                                   " outside [1, " + std::to_string(spec.symbol_max[s]) + "] (the maximum given at compile)");
      sym[s] = got;
    }
    if (!ok)
      fail(ErrorCode::Shape, what() + shape_str(t.shape) + " does not fit the graph's " + dims_str(spec, b.dims) +
                                 (i ? " (with the symbols the inputs before it bound)" : ""));
  }
  for (size_t s = 0; s < sym.size(); s++)
    if (sym[s] < 0) fail(ErrorCode::Internal, std::string(kOp) + ": symbol " + spec.symbol_names[s] + " is bound by no input");
  return sym;
}

// The run's outputs: the tensors handed back (out, one per output) and the root buffers the
// kernels write (roots: a view's root is allocated once); given: the caller's tensors used.
struct Plan::Outputs {
  std::vector<Tensor> out;
  std::vector<std::pair<int, Tensor>> roots;
  std::vector<Tensor> given;
};

// The caller's output tensors: each the output's exact shape, dtype and device, sharing no
// memory with what the kernels read or with another given output.
void Plan::check_given(const std::vector<Tensor>& given, const std::vector<Tensor>& inputs,
                       const std::vector<Tensor>& state, const std::vector<int64_t>& sym, Outputs& o) const {
  const PlanSpec& spec = *spec_;
  if (given.size() != spec.outputs.size())
    fail(ErrorCode::Argument, std::string(kOp) + ": expected " + std::to_string(spec.outputs.size()) + " output slots");
  const auto root_of = [&](size_t i) {
    const Buffer& bs = spec.buffers[size_t(spec.outputs[i])];
    return bs.kind == Buffer::view ? bs.index : spec.outputs[i];
  };
  for (size_t i = 0; i < given.size(); i++) {
    const Tensor& t = given[i];
    if (!t.defined()) continue;
    const int ob = spec.outputs[i];
    const auto what = [&] { return std::string(kOp) + ": output '" + spec.output_names[i] + "' "; };
    for (size_t j = 0; j < spec.outputs.size(); j++)
      if (j != i && root_of(j) == root_of(i))
        fail(ErrorCode::Argument, what() + "shares its buffer with output '" + spec.output_names[j] +
                                      "' (one is a reshape of the other), so it cannot be given");
    if (t.device() != spec.device)
      fail(ErrorCode::Device, what() + "is on " + t.device().name() + ", the model on " + spec.device.name());
    if (t.dtype != spec.buffers[size_t(ob)].dtype)
      fail(ErrorCode::DType, what() + "is " + dtype_name(t.dtype) + ", the graph makes " + dtype_name(spec.buffers[size_t(ob)].dtype));
    const Shape want = resolve(spec.buffers[size_t(ob)].dims, sym);
    if (t.shape != want) fail(ErrorCode::Shape, what() + "is " + shape_str(t.shape) + ", this run makes " + shape_str(want));
    // Kernels read the inputs, weights and state while they write the outputs: no memory in common.
    const Storage* s = t.storage.get();
    for (size_t k = 0; k < inputs.size(); k++)
      if (inputs[k].storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with input '" + spec.input_names[k] + "'");
    for (const Tensor& x : state)
      if (x.storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with the model's state");
    for (const Tensor& w : spec.weights)
      if (w.storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with one of the model's weights");
    for (const Tensor& g : o.given)
      if (g.storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with another given output");
    const int root = root_of(i);
    o.roots.emplace_back(root, t);
    o.roots.back().second.shape = resolve(spec.buffers[size_t(root)].dims, sym);
    o.roots.back().second.dtype = spec.buffers[size_t(root)].dtype;
    o.given.push_back(t);
  }
}

Plan::Outputs Plan::make_outputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& state,
                                 const std::vector<int64_t>& sym, const std::vector<Tensor>* given) const {
  const PlanSpec& spec = *spec_;
  Outputs o;
  o.out.resize(spec.outputs.size());
  if (given) check_given(*given, inputs, state, sym, o);
  for (size_t i = 0; i < spec.outputs.size(); i++) {
    const int ob = spec.outputs[i];
    const Buffer& bs = spec.buffers[size_t(ob)];
    const int root = bs.kind == Buffer::view ? bs.index : ob;  // of kind output (checked at compile)
    auto it = std::find_if(o.roots.begin(), o.roots.end(), [&](const auto& r) { return r.first == root; });
    if (it == o.roots.end()) {
      o.roots.emplace_back(root, empty(resolve(spec.buffers[size_t(root)].dims, sym), spec.buffers[size_t(root)].dtype,
                                       spec.device));
      it = o.roots.end() - 1;
    }
    Tensor t = it->second;
    t.shape = resolve(bs.dims, sym);
    t.dtype = bs.dtype;
    o.out[i] = std::move(t);
  }
  return o;
}

// The rules only a run's sizes and integers settle (a position past a cache's end, rows past a
// table's, causal attention with more queries than keys), by the ops' own checks.
void Plan::check_run(const std::vector<int64_t>& sym, const std::vector<int64_t>& scalars) const {
  const PlanSpec& spec = *spec_;
  // The shapes go into scratch that keeps its capacity: a run is on every decode step's path.
  std::vector<Shape>& shapes = run_shapes_;
  shapes.resize(size_t(ops::kMaxOperands) + 1);
  const auto put = [&](Shape& s, const Dims& dims) {
    s.resize(dims.size());
    for (size_t d = 0; d < dims.size(); d++) s[d] = dims[d] >= 0 ? dims[d] : sym[size_t(-1 - dims[d])];
  };
  for (int i : run_checked_) {
    const Step& s = spec.steps[size_t(i)];
    OpParams p = s.params;
    if (s.scalar >= 0) *ops::position_field(p) += scalars[size_t(s.scalar)];
    const Shape* in[ops::kMaxOperands];
    for (size_t k = 0; k < s.in.size(); k++) {
      put(shapes[k], spec.buffers[size_t(s.in[k])].dims);
      in[k] = &shapes[k];
    }
    put(shapes[size_t(ops::kMaxOperands)], spec.buffers[size_t(s.out[0])].dims);
    ops::op_def(op_of(s.params)).run_check(kOp, p, in, shapes[size_t(ops::kMaxOperands)]);
  }
}

std::vector<Tensor> Plan::run(const std::vector<Tensor>& inputs, const std::vector<int64_t>& scalars,
                              std::shared_ptr<const std::vector<Tensor>> state_ptr,
                              const std::function<void(const std::vector<Tensor>&)>& before_launch,
                              std::function<void(KernelError)> on_done, const std::vector<Tensor>* given) {
  static const std::vector<Tensor> kNone;
  const std::vector<Tensor>& state = state_ptr ? *state_ptr : kNone;
  const PlanSpec& spec = *spec_;
  rt_.check_lost(spec.device);
  if (inputs.size() != spec.inputs.size())
    fail(ErrorCode::Argument, std::string(kOp) + ": expected " + std::to_string(spec.inputs.size()) + " inputs");
  if (scalars.size() != spec.scalar_names.size())
    fail(ErrorCode::Argument, std::string(kOp) + ": expected " + std::to_string(spec.scalar_names.size()) + " scalars");
  if (state.size() != spec.states.size())
    fail(ErrorCode::Argument, std::string(kOp) + ": this model needs a state from model.createState()");
  for (size_t i = 0; i < state.size(); i++)
    if (state[i].shape != spec.states[i].second || state[i].dtype != spec.states[i].first || state[i].device() != spec.device)
      fail(ErrorCode::Argument, std::string(kOp) + ": the state was made by another model");
  for (size_t i = 0; i < scalars.size(); i++)
    if (scalars[i] < 0)
      fail(ErrorCode::Argument, std::string(kOp) + ": " + spec.scalar_names[i] + " must be >= 0, got " + std::to_string(scalars[i]));

  std::vector<int64_t> sym = bind_symbols(inputs);
  Outputs o = make_outputs(inputs, state, sym, given);
  check_run(sym, scalars);

  // launch() propagates errors through the inputs and outputs; the state's tensors are checked
  // and marked inside the task, so a run copies one pointer for them, not every cache tensor.
  auto task = std::make_shared<Task>();
  task->spec = spec_;
  task->views = views_;
  task->prof = profile_->on ? profile_ : nullptr;
  task->recorder = task->prof ? nullptr : recorder_;  // a profiled run times its steps one by one
  task->inputs = inputs;
  task->state = std::move(state_ptr);
  task->sym = std::move(sym);
  task->scalars = scalars;
  std::vector<Tensor> out_list;
  for (const auto& r : o.roots) out_list.push_back(r.second);
  task->roots = std::move(o.roots);
  if (before_launch) before_launch(o.out);
  // Given outputs are written, not read: an error one carried from a failed run describes its
  // old contents, so the run clears it (execute) and writes it afresh.
  Backend& b = backend(spec.device.kind);
  ops::launch(
      rt_, spec.device, inputs, std::move(out_list),
      [&b, task](const Exec& e, const std::vector<Tensor>&, const std::vector<Tensor>&) { execute(e, b, *task); },
      std::move(on_done));
  return std::move(o.out);
}

}  // namespace ignis::graph
