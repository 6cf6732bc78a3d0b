// A compiled forward graph: buffers with symbolic shapes, steps in order, one activation arena
// sized at compile for the symbols' maxima (buffers placed by liveness, lib/graph/compile.ts),
// weights held for the plan's life. A step is an op of the op table (native/ops/op.h) with its
// params, checked at compile by the same rules as an eager call. run() binds the symbols from
// the inputs' shapes, allocates the outputs and enqueues every step as one task on the device
// queue: no per-op work in JS.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/op.h"
#include "../core/tensor.h"
#include "../ops/runtime.h"

namespace ignis::graph {

// A dimension: >= 0 a constant, < 0 the symbol -1 - d.
using Dims = std::vector<int64_t>;

#define IGNIS_BUFFER_KINDS(X) X(input) X(weight) X(arena) X(output) X(state) X(view)
struct Buffer {
  enum Kind : uint8_t {
#define IGNIS_X(name) name,
    IGNIS_BUFFER_KINDS(IGNIS_X)
#undef IGNIS_X
    Count
  };
  Kind kind = arena;
  int index = 0;       // input / weight / output / state index; for a view, the buffer it views
  int64_t offset = 0;  // arena: byte offset
  DType dtype = DType::f32;
  Dims dims;
};
inline constexpr const char* kBufferKindNames[] = {
#define IGNIS_X(name) #name,
    IGNIS_BUFFER_KINDS(IGNIS_X)
#undef IGNIS_X
};
static_assert(sizeof(kBufferKindNames) / sizeof(kBufferKindNames[0]) == size_t(Buffer::Count));

// dims with the symbols' values put in; "[batch, 7]": dims with the symbols by name.
Shape resolve(const Dims& dims, const std::vector<int64_t>& sym);
struct PlanSpec;
std::string dims_str(const PlanSpec& spec, const Dims& dims);

struct Step {
  OpParams params;       // the op and its params; a run's integer is added to its position field
  std::vector<int> in;   // buffer ids of the operands (absent optional ones left off the end)
  std::vector<int> out;  // buffer ids of the outputs (an in-place op's are its first operands)
  int scalar = -1;       // index of the run-time integer (a position) added to the params, or -1
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

class Plan {
 public:
  // Validates the spec (every step against its op's rules, with the symbols as symbols; every
  // buffer inside its arena / state / view at the symbols' maxima), allocates the arena.
  // Throws E_INTERNAL naming the step for a spec that does not hold together.
  Plan(ops::Runtime& rt, PlanSpec spec);

  // Checks the inputs against their specs (E_SHAPE / E_DTYPE / E_DEVICE naming the input),
  // the scalars and the state; allocates the outputs and enqueues the whole plan.
  // given, when not null, has one entry per output: a defined tensor is written in place of a
  // fresh one (it must have the output's exact shape, dtype and device, its own buffer, and
  // share no memory with the inputs, the state, the weights or another given output). The run
  // rewrites a given output whole, so an error it carried from an earlier failed run is cleared.
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

  // One set of tensors per buffer, used by the queued runs (which the plan's queue serializes).
  // Weights and arena slices are bound at compile; a run binds only the buffers in per_run
  // (inputs, outputs, state, views) and re-resolves the symbolic shapes only when its symbols
  // differ from the last run's.
  struct Views {
    std::vector<Tensor> buf;
    std::vector<int> per_run;   // buffer ids, ascending (a view follows the buffer it views)
    std::vector<int> symbolic;  // buffer ids whose shape has a symbol
    std::vector<int64_t> sym;   // the symbols buf's shapes hold; empty before the first run
  };
  struct Profile {
    std::atomic<bool> on{false};
    mutable std::mutex mu;
    std::vector<int64_t> last;
    int64_t runs = 0, ns = 0;
  };

 private:
  struct Outputs;
  std::vector<int64_t> bind_symbols(const std::vector<Tensor>& inputs) const;
  void check_given(const std::vector<Tensor>& given, const std::vector<Tensor>& inputs,
                   const std::vector<Tensor>& state, const std::vector<int64_t>& sym, Outputs& o) const;
  Outputs make_outputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& state,
                       const std::vector<int64_t>& sym, const std::vector<Tensor>* given) const;
  void check_run(const std::vector<int64_t>& sym, const std::vector<int64_t>& scalars) const;

  ops::Runtime& rt_;
  std::shared_ptr<const PlanSpec> spec_;
  Tensor arena_;
  std::vector<int> run_checked_;  // steps whose op has rules each run checks again (a run's
                                  // integer or a symbolic size can break them)
  mutable std::vector<Shape> run_shapes_;  // check_run's scratch (runs come from one JS thread)
  std::shared_ptr<Views> views_;
  std::shared_ptr<Recorder> recorder_;  // CUDA graphs, when the backend and the plan allow
  std::shared_ptr<Profile> profile_ = std::make_shared<Profile>();
};

}  // namespace ignis::graph
