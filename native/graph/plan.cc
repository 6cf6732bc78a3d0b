// Plan: validation at compile, symbol binding and checks at run, and the one queued task that
// runs every step on views of the arena, the inputs, the weights and the state.
#include "plan.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "../cpu/cpu.h"
#include "../ops/kernel.h"
#include "../ops/launch.h"
#include "../ops/ops.h"
#include "cuda_graphs.h"

namespace ignis::graph {
namespace {

[[noreturn]] void fail_step(size_t i, const Step& s, const std::string& why) {
  fail(ErrorCode::Internal, "graph step " + std::to_string(i) + " (" + kOpNames[size_t(s.op)] + "): " + why +
                                " (a bug in the graph builder: please report it)");
}

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

Shape with_last(Shape s, int64_t n) {
  s.back() = n;
  return s;
}

// Checks one step's operand shapes and dtypes (sh, dt: every buffer's, resolved).
void check_step(size_t i, const Step& s, const std::vector<Shape>& sh, const std::vector<DType>& dt) {
  auto in = [&](size_t k) -> int { return k < s.in.size() ? s.in[k] : -1; };
  auto need = [&](bool ok, const std::string& why) {
    if (!ok) fail_step(i, s, why);
  };
  for (int b : s.in) need(b >= -1 && b < int(sh.size()), "input buffer out of range");
  need(s.out >= 0 && s.out < int(sh.size()), "output buffer out of range");
  const Shape& out = sh[size_t(s.out)];
  const DType odt = dt[size_t(s.out)];
  auto S = [&](size_t k) -> const Shape& { return sh[size_t(in(k))]; };
  auto D = [&](size_t k) { return dt[size_t(in(k))]; };
  auto present = [&](size_t k) { return in(k) >= 0; };
  need(present(0), "missing first input");
  const Shape& x = S(0);
  auto bias_ok = [&](size_t k, int64_t N) {
    return !present(k) || (S(k).size() == 1 && S(k)[0] == N && D(k) == odt);
  };
  switch (s.op) {
    case Op::matmul: {
      need(present(1) && x.size() >= 2 && S(1).size() >= 2, "matmul needs a, b of rank >= 2");
      const Shape& b = S(1);
      const bool tb = s.p[0] != 0;
      const int64_t K = x.back(), Kb = tb ? b.back() : b[b.size() - 2], N = tb ? b[b.size() - 2] : b.back();
      need(K == Kb, "K differs: a " + shape_str(x) + ", b " + shape_str(b));
      need(b.size() == 2 || (b.size() == x.size() && std::equal(b.begin(), b.end() - 2, x.begin())),
           "b must be 2-D or share a's batch dims");
      need(out == with_last(x, N), "output shape " + shape_str(out));
      need(is_float(D(0)) && D(1) == D(0) && odt == D(0) && bias_ok(2, N), "dtypes or bias");
      break;
    }
    case Op::matmul_q: {
      need(present(1) && present(2), "matmul_q needs q and scales");
      const Shape& q = S(1);
      const int64_t g = int64_t(s.p[0]);
      need(q.size() == 2 && D(1) == DType::i8 && D(2) == DType::f32 && g > 0 && q[1] % g == 0 &&
               S(2) == Shape{q[0], q[1] / g},
           "quantized weight");
      need(x.back() == q[1] && out == with_last(x, q[0]), "shapes x " + shape_str(x) + ", q " + shape_str(q));
      need(is_float(D(0)) && odt == D(0) && bias_ok(3, q[0]), "dtypes or bias");
      break;
    }
    case Op::matmul_packed: {
      need(present(1), "matmul_packed needs the packed weight");
      const Shape& pk = S(1);
      const int64_t N = int64_t(s.p[0]);
      need(pk.size() == 3 && pk[2] == 16 && D(1) == DType::f32 && pk[0] == (N + 15) / 16, "packed weight");
      need(x.back() == pk[1] && out == with_last(x, N), "shapes x " + shape_str(x) + ", packed " + shape_str(pk));
      need(is_float(D(0)) && odt == D(0) && bias_ok(2, N), "dtypes or bias");
      break;
    }
    case Op::attention: {
      need(present(1) && present(2), "attention needs q, k, v");
      const Shape &k = S(1), &v = S(2);
      need(x.size() == 4 && k.size() == 4 && k == v, "q, k, v must be [B, S, H, D] with k == v");
      need(x[0] == k[0] && x[3] == k[3] && k[2] > 0 && x[2] % k[2] == 0, "q " + shape_str(x) + " vs k " + shape_str(k));
      need(out == x && odt == D(0) && D(1) == D(0) && D(2) == D(0) && is_float(odt), "output or dtypes");
      if (present(3)) {
        need(present(4) && S(3) == S(4) && S(3).size() == 4 && S(3)[0] == k[0] && S(3)[2] == k[2] &&
                 S(3)[3] == k[3] && D(3) == D(1) && D(4) == D(1),
             "cache " + shape_str(S(3)) + " does not fit k " + shape_str(k));
        need(s.scalar >= 0, "a cache needs a position");
      }
      // causal without a cache needs q's seq <= k's: checked per run, where the symbols are bound
      break;
    }
    case Op::rmsnorm:
      need(present(1) && S(1) == Shape{x.back()} && out == x && odt == D(0) && D(1) == D(0) && is_float(odt),
           "rmsnorm shapes");
      break;
    case Op::layernorm:
      need(present(1) && present(2) && S(1) == Shape{x.back()} && S(2) == S(1) && out == x && odt == D(0) &&
               D(1) == D(0) && D(2) == D(0) && is_float(odt),
           "layernorm shapes");
      break;
    case Op::activation:
    case Op::rope:
      need(out == x && odt == D(0) && is_float(odt), "output must match x");
      if (s.op == Op::rope) need(x.size() == 4 && x[3] % 2 == 0, "rope needs [B, S, H, D] with D even");
      break;
    case Op::softmax:
      need(out == x && odt == D(0) && is_float(odt) && s.p[0] >= 0 && s.p[0] < double(x.size()), "softmax");
      break;
    case Op::embedding: {
      need(present(1) && D(0) == DType::i32 && S(1).size() == 2 && is_float(D(1)) && odt == D(1), "embedding");
      Shape want = x;
      want.push_back(S(1)[1]);
      need(out == want, "output shape " + shape_str(out));
      break;
    }
    case Op::binary: {
      need(present(1) && D(1) == D(0) && odt == D(0) && is_float(odt), "binary dtypes");
      need(out == ops::broadcast_shapes(x, S(1), "graph"), "output shape " + shape_str(out));
      break;
    }
    case Op::cast:
      need(out == x && is_float(odt) && is_float(D(0)), "cast");
      break;
    case Op::argmax:
      need(!x.empty() && x.back() >= 1 && out == Shape(x.begin(), x.end() - 1) && odt == DType::i32 && is_float(D(0)), "argmax");
      break;
    case Op::rows: {
      need(!x.empty() && out.size() == x.size() && odt == D(0), "rows");
      need(std::equal(x.begin() + 1, x.end(), out.begin() + 1) && out[0] <= x[0], "rows shape");
      break;
    }
    case Op::last: {
      Shape want = x;
      need(x.size() >= 2, "last needs rank >= 2");
      want[1] = 1;
      need(out == want && odt == D(0), "last shape");
      break;
    }
    default: fail_step(i, s, "unknown op");
  }
}

int64_t nbytes(const Shape& s, DType t) { return shape_numel(s) * int64_t(dtype_size(t)); }

// One step on the views, through ops::kernel (the CPU kernel, or the CUDA kernel on e.cuda's
// stream). pos: the step's run-time integer (0 when it has none); while a CUDA graph records,
// pos is 0 and pos_dev points at the integer on the device.
void run_step(const ops::Exec& e, const Step& s, const std::vector<Tensor>& buf, int64_t pos,
              const int64_t* pos_dev = nullptr) {
  namespace k = ops::kernel;
  auto T = [&](int b) -> const Tensor& { return buf[size_t(b)]; };
  auto opt = [&](size_t i) -> const Tensor* { return i < s.in.size() && s.in[i] >= 0 ? &buf[size_t(s.in[i])] : nullptr; };
  const Tensor& out = T(s.out);
  const Tensor& x = T(s.in[0]);
  switch (s.op) {
    case Op::matmul: {
      MatmulParams p;
      p.transpose_b = s.p[0] != 0;
      p.activation = Activation(int(s.p[1]));
      return k::matmul(e, out, x, T(s.in[1]), opt(2), p);
    }
    case Op::matmul_q:
      return k::matmul_q(e, out, x, T(s.in[1]), T(s.in[2]), int64_t(s.p[0]), opt(3), Activation(int(s.p[1])));
    case Op::matmul_packed:  // a CPU layout: weights on a CUDA device are never packed
      return cpu::matmul_packed(e.pool, out, x, T(s.in[1]), opt(2), Activation(int(s.p[1])));
    case Op::attention: {
      AttentionParams p;
      p.causal = s.p[0] != 0;
      p.scale = s.p[1] > 0 ? float(s.p[1]) : 1.f / std::sqrt(float(x.dim(3)));
      const Tensor& kt = T(s.in[1]);
      if (const Tensor* ck = opt(3)) {
        const Tensor& cv = T(s.in[4]);
        p.kv_len = pos + kt.dim(1);
        p.q_pos0 = pos;
        p.pos_dev = pos_dev;
        k::kv_append(e, *ck, cv, kt, T(s.in[2]), pos, pos_dev);
        return k::attention(e, out, x, *ck, cv, p);
      }
      p.kv_len = kt.dim(1);
      p.q_pos0 = std::max<int64_t>(0, kt.dim(1) - x.dim(1));
      return k::attention(e, out, x, kt, T(s.in[2]), p);
    }
    case Op::rmsnorm: return k::rmsnorm(e, out, x, T(s.in[1]), float(s.p[0]));
    case Op::layernorm: return k::layernorm(e, out, x, T(s.in[1]), T(s.in[2]), float(s.p[0]));
    case Op::activation: return k::activation(e, out, x, Activation(int(s.p[0])));
    case Op::softmax: return k::softmax(e, out, x, int(s.p[0]));
    case Op::rope: return k::rope(e, out, x, pos + int64_t(s.p[1]), float(s.p[0]), pos_dev);
    case Op::embedding: return k::embedding(e, out, x, T(s.in[1]));
    case Op::binary: return k::binary(e, out, x, T(s.in[1]), BinaryOp(int(s.p[0])));
    case Op::cast: return k::cast(e, out, x);
    case Op::argmax: return k::argmax(e, out, x);
    case Op::rows: {  // out = x[pos + p0 : pos + p0 + out rows]
      const int64_t row = x.numel() / std::max<int64_t>(1, x.dim(0));
      const size_t rb = size_t(row) * dtype_size(x.dtype);
      return k::copy(e, out.raw(), static_cast<const char*>(x.raw()) + size_t(pos + int64_t(s.p[0])) * rb,
                     size_t(out.dim(0)) * rb);
    }
    case Op::last: {  // out[b] = x[b, S - 1]
      const int64_t B = x.dim(0), S = x.dim(1);
      const size_t rb = size_t(x.numel() / std::max<int64_t>(1, B * S)) * dtype_size(x.dtype);
      for (int64_t b = 0; b < B; b++)
        k::copy(e, static_cast<char*>(out.raw()) + size_t(b) * rb,
                static_cast<const char*>(x.raw()) + size_t(b * S + S - 1) * rb, rb);
      return;
    }
    default: return;
  }
}

}  // namespace

Plan::Plan(ops::Runtime& rt, PlanSpec spec) : rt_(rt) {
  rt.queue(spec.device);  // E_DEVICE, saying why, for a device that is not usable
  const size_t nb = spec.buffers.size();
  const size_t nsym = spec.symbol_max.size();
  for (int64_t m : spec.symbol_max)
    if (m < 1) fail(ErrorCode::Argument, "graph: every symbolic dimension needs a maximum >= 1");
  for (const Tensor& w : spec.weights)
    if (w.device() != spec.device) fail(ErrorCode::Device, "graph: a weight is on another device");
  // Two assignments: every symbol at its maximum (the sizes the arena was planned for), and
  // all symbols distinct, so a step that mixes two symbols up fails here, not at run time.
  std::vector<std::vector<int64_t>> trials{spec.symbol_max, std::vector<int64_t>(nsym)};
  for (size_t i = 0; i < nsym; i++) trials[1][i] = std::max<int64_t>(1, spec.symbol_max[i] - int64_t(i) - 1);
  for (const auto& sym : trials) {
    std::vector<Shape> sh(nb);
    std::vector<DType> dt(nb);
    for (size_t b = 0; b < nb; b++) {
      const Buffer& buf = spec.buffers[b];
      sh[b] = resolve(buf.dims, sym);
      dt[b] = buf.dtype;
      const int64_t bytes = nbytes(sh[b], buf.dtype);
      switch (buf.kind) {
        case Buffer::arena:
          if (buf.offset < 0 || buf.offset % 64 || buf.offset + bytes > spec.arena_bytes)
            fail(ErrorCode::Internal, "graph: buffer " + std::to_string(b) + " lies outside the arena");
          break;
        case Buffer::weight:
          if (buf.index < 0 || size_t(buf.index) >= spec.weights.size() || spec.weights[size_t(buf.index)].shape != sh[b] ||
              spec.weights[size_t(buf.index)].dtype != buf.dtype)
            fail(ErrorCode::Internal, "graph: weight buffer " + std::to_string(b) + " does not match its tensor");
          break;
        case Buffer::state: {
          if (buf.index < 0 || size_t(buf.index) >= spec.states.size() || spec.states[size_t(buf.index)].first != buf.dtype ||
              bytes > nbytes(spec.states[size_t(buf.index)].second, buf.dtype))
            fail(ErrorCode::Internal, "graph: state buffer " + std::to_string(b) + " does not fit its tensor");
          break;
        }
        case Buffer::view:
          if (buf.index < 0 || size_t(buf.index) >= b || spec.buffers[size_t(buf.index)].kind == Buffer::view ||
              bytes != nbytes(sh[size_t(buf.index)], dt[size_t(buf.index)]))
            fail(ErrorCode::Internal, "graph: view " + std::to_string(b) + " does not match its buffer");
          break;
        default: break;
      }
    }
    for (size_t i = 0; i < spec.steps.size(); i++) {
      const Step& s = spec.steps[i];
      if (s.scalar >= int(spec.scalar_names.size())) fail_step(i, s, "scalar out of range");
      check_step(i, s, sh, dt);
    }
  }
  // Input i is the buffer of kind input whose index is i; every output is a buffer the run
  // allocates, or a view of one (the builder gives outputs that are inputs or weights a copy).
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
  if (spec.arena_bytes > 0) arena_ = empty({spec.arena_bytes}, DType::i8, spec.device);
  // The views every run binds in place: weights and arena slices fixed now, the rest per run.
  views_ = std::make_shared<Views>();
  views_->buf.resize(nb);
  for (size_t b = 0; b < nb; b++) {
    const Buffer& buf = spec.buffers[b];
    Tensor& t = views_->buf[b];
    t.dtype = buf.dtype;
    if (buf.kind == Buffer::weight) {
      t = spec.weights[size_t(buf.index)];
    } else if (buf.kind == Buffer::arena) {
      t.storage = arena_.storage;
      t.offset = size_t(buf.offset);
    } else {
      if (buf.kind == Buffer::view && size_t(buf.index) >= b)
        fail(ErrorCode::Internal, "graph: view " + std::to_string(b) + " comes before the buffer it views");
      views_->per_run.push_back(int(b));
    }
    if (buf.kind != Buffer::weight) {
      t.shape.assign(buf.dims.size(), 0);
      if (std::any_of(buf.dims.begin(), buf.dims.end(), [](int64_t d) { return d < 0; }))
        views_->symbolic.push_back(int(b));
      else
        t.shape.assign(buf.dims.begin(), buf.dims.end());
    }
  }
  if (CudaGraphs::usable(spec)) graphs_ = std::make_shared<CudaGraphs>();
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

std::vector<Tensor> Plan::run(const std::vector<Tensor>& inputs, const std::vector<int64_t>& scalars,
                              std::shared_ptr<const std::vector<Tensor>> state_ptr,
                              const std::function<void(const std::vector<Tensor>&)>& before_launch,
                              std::function<void(KernelError)> on_done, const std::vector<Tensor>* given) {
  static const std::vector<Tensor> kNone;
  const std::vector<Tensor>& state = state_ptr ? *state_ptr : kNone;
  const PlanSpec& spec = *spec_;
  rt_.throw_pending(spec.device);
  const char* op = "model.run";
  if (inputs.size() != spec.inputs.size())
    fail(ErrorCode::Argument, std::string(op) + ": expected " + std::to_string(spec.inputs.size()) + " inputs");
  if (scalars.size() != spec.scalar_names.size())
    fail(ErrorCode::Argument, std::string(op) + ": expected " + std::to_string(spec.scalar_names.size()) + " scalars");
  if (state.size() != spec.states.size())
    fail(ErrorCode::Argument, std::string(op) + ": this model needs a state from model.createState()");
  for (size_t i = 0; i < state.size(); i++)
    if (state[i].shape != spec.states[i].second || state[i].dtype != spec.states[i].first ||
        state[i].device() != spec.device)
      fail(ErrorCode::Argument, std::string(op) + ": the state was made by another model");

  // Bind the symbols from the inputs' shapes.
  std::vector<int64_t> sym(spec.symbol_max.size(), -1);
  for (size_t i = 0; i < inputs.size(); i++) {
    const Buffer& b = spec.buffers[size_t(spec.inputs[i])];
    const Tensor& t = inputs[i];
    // the message prefix, built only when a check fails (a run is on every decode step's path)
    const auto what = [&] { return std::string(op) + ": input '" + spec.input_names[i] + "' "; };
    if (t.device() != spec.device)
      fail(ErrorCode::Device, what() + "is on " + t.device().name() + ", the model on " + spec.device.name());
    if (t.dtype != b.dtype)
      fail(ErrorCode::DType, what() + "is " + dtype_name(t.dtype) + ", the graph wants " + dtype_name(b.dtype));
    bool ok = t.rank() == int(b.dims.size());
    for (size_t d = 0; ok && d < b.dims.size(); d++) {
      const int64_t want = b.dims[d], got = t.shape[d];
      if (want >= 0) {
        ok = got == want;
      } else {
        const size_t s = size_t(-1 - want);
        if (sym[s] < 0) {
          if (got < 1 || got > spec.symbol_max[s])
            fail(ErrorCode::Shape, what() + shape_str(t.shape) + " puts " + spec.symbol_names[s] + " = " +
                                       std::to_string(got) + " outside [1, " + std::to_string(spec.symbol_max[s]) +
                                       "] (the maximum given at compile)");
          sym[s] = got;
        } else {
          ok = got == sym[s];
        }
      }
    }
    if (!ok) fail(ErrorCode::Shape, what() + shape_str(t.shape) + " does not fit the graph's " + dims_str(spec, b.dims) +
                                        (i ? " (with the symbols the inputs before it bound)" : ""));
  }
  for (size_t s = 0; s < sym.size(); s++)
    if (sym[s] < 0) fail(ErrorCode::Internal, std::string(op) + ": symbol " + spec.symbol_names[s] + " is bound by no input");

  auto shape_of = [&](int b) { return resolve(spec.buffers[size_t(b)].dims, sym); };
  auto dim_of = [&](int b, size_t d) {
    const int64_t x = spec.buffers[size_t(b)].dims[d];
    return x >= 0 ? x : sym[size_t(-1 - x)];
  };

  // The outputs: the caller's tensors where given, else fresh tensors for their root buffers
  // (a view's root is allocated once).
  const auto root_of = [&](size_t i) {
    const Buffer& bs = spec.buffers[size_t(spec.outputs[i])];
    return bs.kind == Buffer::view ? bs.index : spec.outputs[i];  // of kind output (checked at compile)
  };
  std::vector<Tensor> outs(spec.outputs.size());
  std::vector<std::pair<int, Tensor>> roots;
  std::vector<Tensor> given_list;  // checked for a failed op's error with the inputs
  if (given) {
    if (given->size() != spec.outputs.size())
      fail(ErrorCode::Argument, std::string(op) + ": expected " + std::to_string(spec.outputs.size()) + " output slots");
    for (size_t i = 0; i < given->size(); i++) {
      const Tensor& t = (*given)[i];
      if (!t.defined()) continue;
      const int ob = spec.outputs[i];
      const auto what = [&] { return std::string(op) + ": output '" + spec.output_names[i] + "' "; };
      for (size_t j = 0; j < spec.outputs.size(); j++)
        if (j != i && root_of(j) == root_of(i))
          fail(ErrorCode::Argument, what() + "shares its buffer with output '" + spec.output_names[j] +
                                        "' (one is a reshape of the other), so it cannot be given");
      if (t.device() != spec.device)
        fail(ErrorCode::Device, what() + "is on " + t.device().name() + ", the model on " + spec.device.name());
      if (t.dtype != spec.buffers[size_t(ob)].dtype)
        fail(ErrorCode::DType, what() + "is " + dtype_name(t.dtype) + ", the graph makes " + dtype_name(spec.buffers[size_t(ob)].dtype));
      const Shape want = shape_of(ob);
      if (t.shape != want) fail(ErrorCode::Shape, what() + "is " + shape_str(t.shape) + ", this run makes " + shape_str(want));
      // Kernels read the inputs, weights and state while they write the outputs: no memory in common.
      const Storage* s = t.storage.get();
      for (size_t k = 0; k < inputs.size(); k++)
        if (inputs[k].storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with input '" + spec.input_names[k] + "'");
      for (const Tensor& x : state)
        if (x.storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with the model's state");
      for (const Tensor& w : spec.weights)
        if (w.storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with one of the model's weights");
      for (const Tensor& g : given_list)
        if (g.storage.get() == s) fail(ErrorCode::Argument, what() + "shares memory with another given output");
      roots.emplace_back(root_of(i), t);
      roots.back().second.shape = shape_of(root_of(i));
      roots.back().second.dtype = spec.buffers[size_t(root_of(i))].dtype;
      given_list.push_back(t);
    }
  }
  for (size_t i = 0; i < spec.outputs.size(); i++) {
    const int ob = spec.outputs[i];
    const Buffer& bs = spec.buffers[size_t(ob)];
    const int root = root_of(i);
    auto it = std::find_if(roots.begin(), roots.end(), [&](const auto& r) { return r.first == root; });
    if (it == roots.end()) {
      roots.emplace_back(root, empty(shape_of(root), spec.buffers[size_t(root)].dtype, spec.device));
      it = roots.end() - 1;
    }
    Tensor t = it->second;
    t.shape = shape_of(ob);
    t.dtype = bs.dtype;
    outs[i] = std::move(t);
  }

  // What only the run's sizes and integers can settle: causal attention without a cache needs
  // q's seq <= k's (two symbols may bind either way); positions must keep every cache write and
  // row range in bounds.
  for (const Step& s : spec.steps) {
    const bool cached = s.op == Op::attention && s.in.size() > 3 && s.in[3] >= 0;
    if (s.op == Op::attention && !cached && s.p[0] != 0 && dim_of(s.in[0], 1) > dim_of(s.in[1], 1))
      fail(ErrorCode::Shape, std::string(op) + ": causal attention needs q's seq <= k's, got q " +
                                 shape_str(shape_of(s.in[0])) + " and k " + shape_str(shape_of(s.in[1])));
    if (s.scalar < 0) continue;
    const int64_t v = scalars[size_t(s.scalar)];
    const std::string& name = spec.scalar_names[size_t(s.scalar)];
    if (v < 0) fail(ErrorCode::Argument, std::string(op) + ": " + name + " must be >= 0, got " + std::to_string(v));
    if (cached) {
      const int64_t seq = dim_of(s.in[1], 1), max = dim_of(s.in[3], 1);
      if (v + seq > max)
        fail(ErrorCode::Argument, std::string(op) + ": " + name + " " + std::to_string(v) + " + " + std::to_string(seq) +
                                      " new rows overflow the KV cache's " + std::to_string(max) + " rows");
    }
    if (s.op == Op::rows) {
      const int64_t start = v + int64_t(s.p[0]), count = dim_of(s.out, 0), rows = dim_of(s.in[0], 0);
      if (start + count > rows)
        fail(ErrorCode::Argument, std::string(op) + ": " + name + " " + std::to_string(v) + " + " + std::to_string(count) +
                                      " rows run past the table's " + std::to_string(rows));
    }
  }

  // launch() propagates errors through the inputs and outputs; the state's tensors are checked
  // and marked inside the task, so a run copies one pointer for them, not every cache tensor.
  std::vector<Tensor> out_list;
  for (const auto& r : roots) out_list.push_back(r.second);
  std::shared_ptr<const PlanSpec> keep = spec_;
  std::shared_ptr<Views> views = views_;
  std::shared_ptr<Profile> prof = profile_->on ? profile_ : nullptr;
  std::shared_ptr<CudaGraphs> graphs = prof ? nullptr : graphs_;  // a profiled run times its steps eagerly
  if (before_launch) before_launch(outs);
  std::vector<Tensor> in_list(inputs);
  in_list.insert(in_list.end(), given_list.begin(), given_list.end());
  ops::launch(rt_, spec.device, std::move(in_list), std::move(out_list),
              [keep, views, prof, graphs, inputs, state_ptr, roots = std::move(roots), sym = std::move(sym), scalars](const ops::Exec& e) {
                const PlanSpec& spec = *keep;
                static const std::vector<Tensor> kNone;
                const std::vector<Tensor>& state = state_ptr ? *state_ptr : kNone;
                for (const Tensor& t : state)  // a failed earlier run left the caches unusable
                  if (KernelError e = t.storage->error()) {
                    for (const auto& r : roots) r.second.storage->set_error(e);
                    return;
                  }
                // Runs of one plan are serialized on its queue, so this task owns the views: bind
                // this run's tensors (and its shapes, when its symbols changed) in place, with no
                // allocation, and let go of the run's tensors when done, even if a kernel throws.
                Views& v = *views;
                std::vector<Tensor>& buf = v.buf;
                struct Release {
                  Views& v;
                  ~Release() {
                    for (int b : v.per_run) v.buf[size_t(b)].storage.reset();
                  }
                } release{v};
                if (v.sym != sym) {
                  for (int b : v.symbolic) {
                    const Dims& dims = spec.buffers[size_t(b)].dims;
                    Shape& shape = buf[size_t(b)].shape;
                    for (size_t d = 0; d < dims.size(); d++) shape[d] = dims[d] >= 0 ? dims[d] : sym[size_t(-1 - dims[d])];
                  }
                  v.sym = sym;
                }
                // inputs[i] and root tensors (in roots' order) into the views, then the views of them
                auto bind = [&](const std::vector<Tensor>& ins, const std::vector<Tensor>& rts) {
                  for (size_t i = 0; i < roots.size(); i++) {
                    Tensor& t = buf[size_t(roots[i].first)];
                    t.storage = rts[i].storage, t.offset = rts[i].offset;  // a given output may sit at an offset
                  }
                  for (int b : v.per_run) {
                    const Buffer& s = spec.buffers[size_t(b)];
                    Tensor& t = buf[size_t(b)];
                    switch (s.kind) {
                      case Buffer::input: t.storage = ins[size_t(s.index)].storage, t.offset = ins[size_t(s.index)].offset; break;
                      case Buffer::state: t.storage = state[size_t(s.index)].storage, t.offset = 0; break;
                      case Buffer::view:
                        t.storage = buf[size_t(s.index)].storage, t.offset = buf[size_t(s.index)].offset;
                        break;
                      default: break;  // output: bound above
                    }
                  }
                };
                std::vector<Tensor> root_tensors;
                for (const auto& r : roots) root_tensors.push_back(r.second);
                bind(inputs, root_tensors);
                std::vector<int64_t> times;
                if (prof) times.reserve(spec.steps.size());
#ifdef IGNIS_WITH_CUDA
                // On CUDA the steps only queue kernels: a profiled run waits for each, and every
                // run waits for its end, so a fault a kernel recorded (an id out of range) fails
                // this run and its state, as on the CPU.
                auto wait = [&] { if (e.cuda) cuda::synchronize(e.cuda->device); };
#else
                auto wait = [] {};
#endif
                auto t0 = std::chrono::steady_clock::now();
                // A kernel error mid-run leaves the caches half written: they carry the error too.
                auto mark_state = [&](KernelError err) {
                  for (const Tensor& t : state) t.storage->set_error(err);
                };
                try {
                  if (graphs && e.cuda) {
                    graphs->run(e, sym, state, inputs, root_tensors, scalars, bind,
                                [&](const ops::Exec& ge, const int64_t* pos_dev) {
                                  for (const Step& s : spec.steps)
                                    run_step(ge, s, buf, 0, s.scalar >= 0 ? pos_dev + s.scalar : nullptr);
                                });
                  } else for (const Step& s : spec.steps) {
                    run_step(e, s, buf, s.scalar >= 0 ? scalars[size_t(s.scalar)] : 0);
                    if (prof) {
                      wait();
                      const auto t1 = std::chrono::steady_clock::now();
                      times.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
                      t0 = t1;
                    }
                  }
                  wait();
                } catch (const Error& err) {
                  mark_state(std::make_shared<const Error>(err));
                  throw;
                } catch (...) {
                  mark_state(std::make_shared<const Error>(ErrorCode::Internal, "a run with this state failed"));
                  throw;
                }
                if (prof) {
                  std::lock_guard<std::mutex> lock(prof->mu);
                  prof->runs++;
                  for (int64_t t : times) prof->ns += t;
                  prof->last = std::move(times);
                }
              },
              std::move(on_done));
  return outs;
}

}  // namespace ignis::graph
