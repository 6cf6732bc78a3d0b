// CUDA graph capture and replay of compiled plans (see cuda_graphs.h). Compiled to nothing in a
// build without the CUDA backend.
#include "cuda_graphs.h"

#include <cstdlib>
#include <cstring>

#include "plan.h"

#ifdef IGNIS_WITH_CUDA
#include "../cuda/runtime.h"
#endif

namespace ignis::graph {

bool CudaGraphs::usable(const PlanSpec& spec) {
#ifdef IGNIS_WITH_CUDA
  if (spec.device.kind != Device::CUDA) return false;
  if (const char* env = std::getenv("IGNIS_CUDA_GRAPHS"))
    if (std::strcmp(env, "0") == 0) return false;
  for (const Step& s : spec.steps)
    if (s.op == Op::rows && s.scalar >= 0) return false;  // a source address from a position
  return true;
#else
  (void)spec;
  return false;
#endif
}

#ifdef IGNIS_WITH_CUDA

namespace {
constexpr size_t kMaxGraphs = 16;  // shape buckets x states kept per plan
}

struct CudaGraphs::Entry {
  std::vector<int64_t> sym;
  std::vector<const void*> state;              // the state tensors' addresses
  std::vector<Tensor> inputs, roots;           // the graph's own input and output buffers
  Tensor positions;                            // i64 per scalar, on the device (as bytes)
  std::vector<std::shared_ptr<Storage>> keep;  // scratch the recorded kernels use
  std::unique_ptr<cuda::Graph> graph;
};

CudaGraphs::CudaGraphs() = default;
CudaGraphs::~CudaGraphs() = default;

void CudaGraphs::run(const ops::Exec& e, const std::vector<int64_t>& sym, const std::vector<Tensor>& state,
                     const std::vector<Tensor>& inputs, const std::vector<Tensor>& roots,
                     const std::vector<int64_t>& scalars, const Bind& bind, const Record& record) {
  const cuda::Launch& L = *e.cuda;
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
    en->graph = cuda::Graph::capture(L.device, &en->keep, [&](const cuda::Launch& G) { record(ops::Exec{e.pool, &G}, pos); });
    entries_.push_front(std::move(en));
    if (entries_.size() > kMaxGraphs) entries_.pop_back();  // its buffers go back to the cache, stream-ordered
  }
  Entry& en = *entries_.front();
  if (!scalars.empty()) cuda::upload(L.device, en.positions.raw(), scalars.data(), scalars.size() * sizeof(int64_t));
  for (size_t i = 0; i < inputs.size(); i++) cuda::copy_async(L, en.inputs[i].raw(), inputs[i].raw(), inputs[i].nbytes());
  en.graph->replay();
  for (size_t i = 0; i < roots.size(); i++) cuda::copy_async(L, roots[i].raw(), en.roots[i].raw(), roots[i].nbytes());
}

#else

struct CudaGraphs::Entry {};
CudaGraphs::CudaGraphs() = default;
CudaGraphs::~CudaGraphs() = default;
void CudaGraphs::run(const ops::Exec&, const std::vector<int64_t>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
                     const std::vector<Tensor>&, const std::vector<int64_t>&, const Bind&, const Record&) {
  fail(ErrorCode::Internal, "CUDA graphs in a build without CUDA");
}

#endif

}  // namespace ignis::graph
