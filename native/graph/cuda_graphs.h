// A compiled plan on a CUDA device is captured as a CUDA graph once per shape bucket (the
// symbols' values) and state, and replayed: one graph launch per run. The graph reads its
// inputs from, and writes its outputs to, buffers it owns (a run copies in and out around the
// replay), and reads the run's integers (positions) from device memory the run uploads first,
// so neither the run's tensors nor its positions are baked into it. Plans with a step whose
// addresses depend on a position (rows) run their steps one by one instead.
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <vector>

#include "../core/tensor.h"
#include "../ops/launch.h"

namespace ignis::graph {

struct PlanSpec;

class CudaGraphs {
 public:
  CudaGraphs();
  ~CudaGraphs();
  // Records the plan's steps: bind(inputs, output roots) points the plan's views at the given
  // tensors, record(exec, positions_dev) issues every step with positions read on the device.
  using Bind = std::function<void(const std::vector<Tensor>& inputs, const std::vector<Tensor>& roots)>;
  using Record = std::function<void(const ops::Exec& e, const int64_t* positions_dev)>;

  // Whether a plan can be captured (no step takes device addresses from a run-time integer),
  // and whether graphs are on (IGNIS_CUDA_GRAPHS=0 turns them off, to compare).
  static bool usable(const PlanSpec& spec);

  // One run: finds or captures the graph for (sym, state), uploads the scalars, copies the
  // inputs in, replays, copies the output roots out. Everything is queued on e.cuda's stream.
  void run(const ops::Exec& e, const std::vector<int64_t>& sym, const std::vector<Tensor>& state,
           const std::vector<Tensor>& inputs, const std::vector<Tensor>& roots, const std::vector<int64_t>& scalars,
           const Bind& bind, const Record& record);

 private:
  struct Entry;
  std::list<std::unique_ptr<Entry>> entries_;  // most recently used first
};

}  // namespace ignis::graph
