// A compiled forward graph: buffers with symbolic shapes, steps in order, one activation arena
// sized at compile for the symbols' maxima (buffers placed by liveness, lib/graph.ts), weights
// held for the plan's life. run() binds the symbols from the inputs' shapes, allocates the
// outputs and enqueues every step as one task on the device queue: no per-op work in JS.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/op_params.h"
#include "../core/tensor.h"
#include "../ops/runtime.h"

namespace ignis::graph {

// The step ops. A plan's steps call the same CPU kernels as the eager ops.
enum class Op : uint8_t {
  matmul,         // in: a, b, [bias]          p: transposeB, activation
  matmul_q,       // in: x, q, scales, [bias]  p: groupSize, activation
  matmul_packed,  // in: x, packed, [bias]     p: N, activation
  attention,      // in: q, k, v, [cacheK, cacheV]  p: causal, scale; scalar: position (cache)
  rmsnorm,        // in: x, weight             p: eps
  layernorm,      // in: x, weight, bias       p: eps
  activation,     // in: x                     p: activation
  softmax,        // in: x                     p: axis
  rope,           // in: x                     p: theta, position offset; scalar: position
  embedding,      // in: ids, table
  binary,         // in: a, b                  p: BinaryOp
  cast,           // in: x
  rows,           // in: table [R, ...]        p: start offset; scalar: start -> table[start : start + count]
  last,           // in: x [B, S, ...]         -> x[:, S - 1 : S, ...]
  argmax,         // in: x [..., n]            -> i32 [...]
  Count
};
inline constexpr const char* kOpNames[] = {"matmul",  "matmul_q", "matmul_packed", "attention", "rmsnorm",
                                           "layernorm", "activation", "softmax",   "rope",      "embedding",
                                           "binary",  "cast",     "rows",          "last",      "argmax"};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == size_t(Op::Count), "every graph op needs a name");

// A dimension: >= 0 a constant, < 0 the symbol -1 - d.
using Dims = std::vector<int64_t>;

struct Buffer {
  enum Kind : uint8_t { input, weight, arena, output, state, view };
  Kind kind = arena;
  int index = 0;       // input / weight / output / state index; for a view, the buffer it views
  int64_t offset = 0;  // arena: byte offset
  DType dtype = DType::f32;
  Dims dims;
};

struct Step {
  Op op = Op::cast;
  std::vector<int> in;  // buffer ids; -1 for an absent optional input
  int out = -1;
  double p[3] = {0, 0, 0};
  int scalar = -1;  // index of a run-time integer (a position), or -1
};

struct PlanSpec {
  Device device;
  std::vector<int64_t> symbol_max;  // each symbol runs over [1, max]
  std::vector<std::string> symbol_names;
  std::vector<Buffer> buffers;
  std::vector<Step> steps;
  std::vector<int> inputs, outputs;   // buffer ids, in the run's order
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;
  std::vector<std::string> scalar_names;
  std::vector<Tensor> weights;
  std::vector<std::pair<DType, Shape>> states;  // the state tensors (KV caches), full size
  int64_t arena_bytes = 0;
};

class CudaGraphs;

class Plan {
 public:
  // Validates the spec (every step's shapes and dtypes at the symbols' maxima and at a second,
  // all-distinct assignment; every buffer inside its arena / state / view), allocates the arena.
  // Throws E_INTERNAL naming the step for a spec that does not hold together.
  Plan(ops::Runtime& rt, PlanSpec spec);

  // Checks the inputs against their specs (E_SHAPE / E_DTYPE / E_DEVICE naming the input),
  // the scalars (E_RANGE) and the state; allocates the outputs and enqueues the whole plan.
  // given, when not null, has one entry per output: a defined tensor is written in place of a
  // fresh one (it must have the output's exact shape, dtype and device, its own buffer, and
  // share no memory with the inputs, the state, the weights or another given output); a tensor
  // that carries a failed op's error fails the run with it.
  // before_launch(outputs) runs once everything is checked and allocated, just before the
  // plan is enqueued: the binding makes the JS objects there, so the calling thread is done
  // before the kernels take the cores. on_done, when given, is called on the worker when the
  // run is over, with the error its outputs carry (or none).
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, const std::vector<int64_t>& scalars,
                          std::shared_ptr<const std::vector<Tensor>> state,
                          const std::function<void(const std::vector<Tensor>&)>& before_launch = {},
                          std::function<void(KernelError)> on_done = {},
                          const std::vector<Tensor>* given = nullptr);
  // Fresh state tensors (zero-filled), one set per independent sequence batch.
  std::vector<Tensor> make_state();

  // Profiling: while on, each run records every step's time (ns); last_profile() is the most
  // recent finished run's, in step order (empty when none); profile_total() is {runs, ns}
  // summed over the profiled runs finished since profiling was last turned on.
  void set_profiling(bool on);
  std::vector<int64_t> last_profile() const;
  std::pair<int64_t, int64_t> profile_total() const;
  const PlanSpec& spec() const { return *spec_; }

  int64_t arena_bytes() const { return spec_->arena_bytes; }
  int64_t weight_bytes() const;
  int64_t state_bytes() const;

 private:
  ops::Runtime& rt_;
  std::shared_ptr<const PlanSpec> spec_;
  Tensor arena_;
  // One tensor per buffer, used by the queued runs (which the plan's queue serializes). Weights
  // and arena slices are bound at compile; a run binds only the buffers in per_run (inputs,
  // outputs, state, views) and re-resolves the symbolic shapes only when its symbols differ
  // from the last run's.
  struct Views {
    std::vector<Tensor> buf;
    std::vector<int> per_run;   // buffer ids, ascending (a view follows the buffer it views)
    std::vector<int> symbolic;  // buffer ids whose shape has a symbol
    std::vector<int64_t> sym;   // the symbols buf's shapes hold; empty before the first run
  };
  std::shared_ptr<Views> views_;
  std::shared_ptr<CudaGraphs> graphs_;  // on a CUDA device, when the plan can be captured
  struct Profile {
    std::atomic<bool> on{false};
    mutable std::mutex mu;
    std::vector<int64_t> last;
    int64_t runs = 0, ns = 0;
  };
  std::shared_ptr<Profile> profile_ = std::make_shared<Profile>();
};

}  // namespace ignis::graph
