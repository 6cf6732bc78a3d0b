// Compiled plans on a CUDA device, captured as a CUDA graph once per shape bucket (the symbols'
// values) and state, and replayed: one graph launch per run. The graph reads its inputs from,
// and writes its outputs to, buffers it owns (a run copies in and out around the replay), and
// reads the run's integers (positions) from device memory the run uploads first, so neither
// the run's tensors nor its positions are baked into it. The plan decides which plans may be
// captured (graph/plan.cc); this is the backend's Recorder for them.
#include <cstdlib>
#include <cstring>
#include <list>

#include "backend.h"
#include "runtime.h"

namespace ignis::cuda {
namespace {

constexpr size_t kMaxGraphs = 16;  // shape buckets x states kept per plan

class GraphRecorder final : public Recorder {
 public:
  void run(const Exec& e, const std::vector<int64_t>& sym, const std::vector<Tensor>& state,
           const std::vector<Tensor>& inputs, const std::vector<Tensor>& roots, const std::vector<int64_t>& scalars,
           const Bind& bind, const Record& record) override;

 private:
  struct Entry {
    std::vector<int64_t> sym;
    std::vector<const void*> state;              // the state tensors' addresses
    std::vector<Tensor> inputs, roots;           // the graph's own input and output buffers
    Tensor positions;                            // i64 per scalar, on the device (as bytes)
    std::vector<std::shared_ptr<Storage>> keep;  // scratch the recorded kernels use
    std::unique_ptr<Graph> graph;
  };
  std::list<std::unique_ptr<Entry>> entries_;  // most recently used first
};

void GraphRecorder::run(const Exec& e, const std::vector<int64_t>& sym, const std::vector<Tensor>& state,
                        const std::vector<Tensor>& inputs, const std::vector<Tensor>& roots,
                        const std::vector<int64_t>& scalars, const Bind& bind, const Record& record) {
  const Launch& L = *static_cast<const Launch*>(e.ctx);
  std::vector<const void*> state_key;
  for (const Tensor& t : state) state_key.push_back(t.raw());
  auto it = entries_.begin();
  for (; it != entries_.end(); ++it)
    if ((*it)->sym == sym && (*it)->state == state_key) break;
  if (it != entries_.end()) {
    entries_.splice(entries_.begin(), entries_, it);
  } else {
    auto en = std::make_unique<Entry>();
    en->sym = sym;
    en->state = state_key;
    for (const Tensor& t : inputs) en->inputs.push_back(empty(t.shape, t.dtype, t.device()));
    for (const Tensor& t : roots) en->roots.push_back(empty(t.shape, t.dtype, t.device()));
    en->positions = empty({int64_t(std::max<size_t>(scalars.size(), 1) * sizeof(int64_t))}, DType::i8,
                          Device{Device::CUDA, L.device});
    bind(en->inputs, en->roots);
    const auto* pos = static_cast<const int64_t*>(en->positions.raw());
    en->graph = Graph::capture(L.device, &en->keep, [&](const Launch& G) { record(Exec{e.pool, &G}, pos); });
    entries_.push_front(std::move(en));
    if (entries_.size() > kMaxGraphs) entries_.pop_back();  // its buffers go back to the cache, stream-ordered
  }
  Entry& en = *entries_.front();
  if (!scalars.empty()) upload(L.device, en.positions.raw(), scalars.data(), scalars.size() * sizeof(int64_t));
  for (size_t i = 0; i < inputs.size(); i++) copy_async(L, en.inputs[i].raw(), inputs[i].raw(), inputs[i].nbytes());
  en.graph->replay();
  for (size_t i = 0; i < roots.size(); i++) copy_async(L, roots[i].raw(), en.roots[i].raw(), roots[i].nbytes());
}

}  // namespace

std::unique_ptr<Recorder> make_recorder() {
  if (const char* env = std::getenv("IGNIS_CUDA_GRAPHS"))
    if (std::strcmp(env, "0") == 0) return nullptr;
  return std::make_unique<GraphRecorder>();
}

}  // namespace ignis::cuda
