// Plan: validation at compile (every step by its op's rules), symbol binding and checks at run,
// and the one queued task that runs every step on views of the arena, the inputs, the weights
// and the state. Each phase of a run is a function of its own.
#include "plan.h"

#include <algorithm>
#include <cstring>

#include "../core/limits.h"
#include "../ops/launch.h"
#include "../ops/op.h"
#include "../ops/ops.h"

namespace ignis::graph {
namespace {

[[noreturn]] void fail_step(size_t i, const Step& s, const std::string& why) {
  fail(ErrorCode::Internal, "graph step " + std::to_string(i) + " (" + op_name(op_of(s.params)) + "): " + why +
                                " (a bug in the graph builder: please report it)");
}


int64_t nbytes(const Shape& s, DType t) { return shape_numel(s) * int64_t(dtype_size(t)); }

// Every buffer inside what holds it (arena, weight, state, viewed buffer), at the symbols' maxima.
void check_buffers(const PlanSpec& spec) {
  const size_t nb = spec.buffers.size();
  std::vector<Shape> sh(nb);
  for (size_t b = 0; b < nb; b++) {
    const Buffer& buf = spec.buffers[b];
    sh[b] = resolve(buf.dims, spec.symbol_max);
    // at the symbols' maxima every buffer must be a tensor ignis can hold (E_RANGE names it)
    const int64_t bytes = check_shape(sh[b], ("graph: buffer " + std::to_string(b) + ", at the symbols' maxima,").c_str()) *
                          int64_t(dtype_size(buf.dtype));
    const auto bad = [&](const char* what) {
      fail(ErrorCode::Internal, "graph: buffer " + std::to_string(b) + " " + what);
    };
    switch (buf.kind) {
      case Buffer::arena:
        if (buf.offset < 0 || buf.offset % 64 || buf.offset + bytes > spec.arena_bytes) bad("lies outside the arena");
        break;
      case Buffer::weight:
        if (buf.index < 0 || size_t(buf.index) >= spec.weights.size() || spec.weights[size_t(buf.index)].shape != sh[b] ||
            spec.weights[size_t(buf.index)].dtype != buf.dtype)
          bad("does not match its weight");
        break;
      case Buffer::state:
        if (buf.index < 0 || size_t(buf.index) >= spec.states.size() || spec.states[size_t(buf.index)].first != buf.dtype ||
            bytes > nbytes(spec.states[size_t(buf.index)].second, buf.dtype))
          bad("does not fit its state tensor");
        break;
      case Buffer::view:
        if (buf.index < 0 || size_t(buf.index) >= b || spec.buffers[size_t(buf.index)].kind == Buffer::view ||
            bytes != nbytes(sh[size_t(buf.index)], spec.buffers[size_t(buf.index)].dtype))
          bad("does not match the buffer it views");
        break;
      case Buffer::input:
      case Buffer::output:
        break;
      case Buffer::Count: bad("has no kind");
    }
  }
}

// Every step against its op's rules, with the symbols as symbols: the outputs its op infers
// must be exactly its output buffers. The builder applied the same rules, so a failure here
// is a bug in it.
void check_steps(const PlanSpec& spec) {
  const int nb = int(spec.buffers.size());
  for (size_t i = 0; i < spec.steps.size(); i++) {
    const Step& s = spec.steps[i];
    const ops::OpDef& d = ops::op_def(op_of(s.params));
    if (!d.infer || d.min_in == 0) fail_step(i, s, "not an op a graph may hold");
    if (int(s.in.size()) < d.min_in || int(s.in.size()) > d.max_in) fail_step(i, s, "wrong operand count");
    if (int(s.out.size()) != d.n_out) fail_step(i, s, "wrong output count");
    if (s.scalar >= int(spec.scalar_names.size())) fail_step(i, s, "scalar out of range");
    OpParams p = s.params;
    if (s.scalar >= 0 && !ops::position_field(p)) fail_step(i, s, "the op takes no run-time integer");
    ops::Operand operands[ops::kMaxOperands];
    for (size_t k = 0; k < s.in.size(); k++) {
      if (s.in[k] < 0 || s.in[k] >= nb) fail_step(i, s, "operand buffer out of range");
      const Buffer& b = spec.buffers[size_t(s.in[k])];
      operands[k] = {&b.dims, b.dtype, d.operands[k]};
    }
    std::vector<ops::Meta> metas;
    try {
      const std::string prefix = "graph step " + std::to_string(i);
      ops::Infer c(prefix.c_str(), operands, int(s.in.size()), &spec.symbol_names);
      metas = d.infer(c, p);
    } catch (const Error& e) {
      fail_step(i, s, e.what());
    }
    for (size_t k = 0; k < s.out.size(); k++) {
      if (s.out[k] < 0 || s.out[k] >= nb) fail_step(i, s, "output buffer out of range");
      if (d.in_place && s.out[k] != s.in[k]) fail_step(i, s, "an in-place op's outputs must be its first operands");
      const Buffer& b = spec.buffers[size_t(s.out[k])];
      if (b.dims != metas[k].shape || b.dtype != metas[k].dtype)
        fail_step(i, s, "output " + dims_str(spec, b.dims) + " " + dtype_name(b.dtype) + ", the op makes " +
                            dims_str(spec, metas[k].shape) + " " + dtype_name(metas[k].dtype));
    }
  }
}

// Input i is the buffer of kind input whose index is i; every output is a buffer the run
// allocates, or a view of one (the builder gives outputs that are inputs or weights a copy).
void check_io(const PlanSpec& spec) {
  const size_t nb = spec.buffers.size();
  for (size_t i = 0; i < spec.inputs.size(); i++) {
    const int b = spec.inputs[i];
    if (b < 0 || size_t(b) >= nb || spec.buffers[size_t(b)].kind != Buffer::input || spec.buffers[size_t(b)].index != int(i))
      fail(ErrorCode::Internal, "graph: input buffers and the input list disagree");
  }
  for (int b : spec.outputs) {
    if (b < 0 || size_t(b) >= nb) fail(ErrorCode::Internal, "graph: bad output buffer");
    const Buffer& o = spec.buffers[size_t(b)];
    if ((o.kind == Buffer::view ? spec.buffers[size_t(o.index)].kind : o.kind) != Buffer::output)
      fail(ErrorCode::Internal, "graph: output buffer " + std::to_string(b) + " is not one the run allocates");
  }
}

// Whether a recording may replay the plan: no step may take a device address from a run-time
// integer (rows copies from an offset the position gives).
bool replayable(const PlanSpec& spec) {
  for (const Step& s : spec.steps)
    if (op_of(s.params) == OpId::rows && s.scalar >= 0) return false;
  return true;
}

}  // namespace

Shape resolve(const Dims& dims, const std::vector<int64_t>& sym) {
  Shape s(dims.size());
  for (size_t i = 0; i < dims.size(); i++) s[i] = dims[i] >= 0 ? dims[i] : sym[size_t(-1 - dims[i])];
  return s;
}

std::string dims_str(const PlanSpec& spec, const Dims& dims) {
  std::string r = "[";
  for (size_t i = 0; i < dims.size(); i++) {
    if (i) r += ", ";
    r += dims[i] >= 0 ? std::to_string(dims[i]) : spec.symbol_names[size_t(-1 - dims[i])];
  }
  return r + "]";
}

Plan::Plan(ops::Runtime& rt, PlanSpec spec) : rt_(rt) {
  rt.queue(spec.device);  // E_DEVICE, saying why, for a device that is not usable
  const size_t nb = spec.buffers.size();
  for (int64_t m : spec.symbol_max)
    if (m < 1 || m > kMaxElements)
      fail(ErrorCode::Range, "graph: every symbolic dimension needs a maximum in [1, 2^40]");
  for (const auto& st : spec.states) check_shape(st.second, "graph: a KV cache of shape");
  if (spec.arena_bytes < 0 || spec.arena_bytes > kMaxElements * 8)
    fail(ErrorCode::Range, "graph: an arena of " + std::to_string(spec.arena_bytes) + " bytes is past what ignis may allocate");
  for (const Tensor& w : spec.weights)
    if (w.device() != spec.device) fail(ErrorCode::Device, "graph: a weight is on another device");
  for (const Buffer& b : spec.buffers)
    for (int64_t d : b.dims)
      if (d < 0 && size_t(-1 - d) >= spec.symbol_max.size()) fail(ErrorCode::Internal, "graph: a dimension names no symbol");
  check_buffers(spec);
  check_steps(spec);
  check_io(spec);
  Backend& b = backend(spec.device.kind);
  for (size_t i = 0; i < spec.steps.size(); i++) {
    const Step& s = spec.steps[i];
    const OpId op = op_of(s.params);
    const DType dt = s.in.empty() ? DType::f32 : spec.buffers[size_t(s.in[0])].dtype;
    if (!b.supports(op, dt)) {
      const ops::OpDef& d = ops::op_def(op);
      fail(ErrorCode::Device, std::string("graph: ") + d.name + " is not available on " + spec.device.name() + ": " +
                                  (d.elsewhere ? d.elsewhere : "no kernel"));
    }
    std::vector<DType> in_types;
    for (int j : s.in) in_types.push_back(spec.buffers[size_t(j)].dtype);
    if (const char* why = b.lacks(s.params, in_types.data(), int(in_types.size())))
      fail(ErrorCode::Device, std::string("graph: ") + ops::op_def(op).name + " is not available on " + spec.device.name() + ": " + why);
    // A step's run-time rules need checking again only where a run can change their inputs:
    // a run-time integer, or a symbolic size among its buffers.
    bool varies = s.scalar >= 0;
    for (int b : s.in)
      for (int64_t d : spec.buffers[size_t(b)].dims) varies |= d < 0;
    for (int64_t d : spec.buffers[size_t(s.out[0])].dims) varies |= d < 0;
    if (ops::op_def(op).run_check && varies) run_checked_.push_back(int(i));
  }
  if (spec.arena_bytes > 0) arena_ = empty({spec.arena_bytes}, DType::i8, spec.device);
  // The views every run binds in place: weights and arena slices fixed now, the rest per run.
  views_ = std::make_shared<Views>();
  views_->buf.resize(nb);
  for (size_t i = 0; i < nb; i++) {
    const Buffer& buf = spec.buffers[i];
    Tensor& t = views_->buf[i];
    t.dtype = buf.dtype;
    if (buf.kind == Buffer::weight) {
      t = spec.weights[size_t(buf.index)];
    } else if (buf.kind == Buffer::arena) {
      t.storage = arena_.storage;
      t.offset = size_t(buf.offset);
    } else {
      views_->per_run.push_back(int(i));
    }
    if (buf.kind != Buffer::weight) {
      t.shape.assign(buf.dims.size(), 0);
      if (std::any_of(buf.dims.begin(), buf.dims.end(), [](int64_t d) { return d < 0; }))
        views_->symbolic.push_back(int(i));
      else
        t.shape.assign(buf.dims.begin(), buf.dims.end());
    }
  }
  if (replayable(spec)) recorder_ = b.recorder();
  spec_ = std::make_shared<const PlanSpec>(std::move(spec));
}

void Plan::set_profiling(bool on) {
  std::lock_guard<std::mutex> lock(profile_->mu);
  if (on && !profile_->on) profile_->runs = profile_->ns = 0;
  profile_->on = on;
}

std::vector<int64_t> Plan::last_profile() const {
  std::lock_guard<std::mutex> lock(profile_->mu);
  return profile_->last;
}

std::pair<int64_t, int64_t> Plan::profile_total() const {
  std::lock_guard<std::mutex> lock(profile_->mu);
  return {profile_->runs, profile_->ns};
}

int64_t Plan::weight_bytes() const {
  int64_t n = 0;
  for (const Tensor& w : spec_->weights) n += int64_t(w.nbytes());
  return n;
}

int64_t Plan::state_bytes() const {
  int64_t n = 0;
  for (const auto& s : spec_->states) n += nbytes(s.second, s.first);
  return n;
}

std::vector<Tensor> Plan::make_state() {
  std::vector<Tensor> out;
  for (const auto& s : spec_->states) out.push_back(ops::full(rt_, s.second, s.first, spec_->device, 0.0));
  return out;
}

}  // namespace ignis::graph
