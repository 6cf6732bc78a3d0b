// Device names and the per-instance runtime (thread pool + device queues).
#include "runtime.h"

#include <cstdlib>

#include "../core/backend.h"

namespace ignis::ops {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device{Device::CPU, 0};
  if (name == "cuda") return Device{Device::CUDA, 0};
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() < 9) {
    int index = 0;
    for (size_t i = 5; i < name.size(); i++) {
      if (name[i] < '0' || name[i] > '9') fail(ErrorCode::Device, "unknown device '" + name + "'");
      index = index * 10 + (name[i] - '0');
    }
    return Device{Device::CUDA, index};
  }
  fail(ErrorCode::Device, "unknown device '" + name + "': use 'cpu', 'cuda' or 'cuda:N'");
}

static int default_threads() {
  if (const char* env = std::getenv("IGNIS_THREADS")) {
    int n = std::atoi(env);
    if (n > 0 && n <= 1024) return n;
  }
  return 0;
}

Runtime::Runtime(int threads)
    : pool_(std::make_unique<ThreadPool>(threads > 0 ? threads : default_threads())),
      cpu_queue_(std::make_unique<Queue>("cpu")) {
  register_backends();
}

Runtime::~Runtime() {
  cuda_queues_.clear();  // join the workers before the pool they use goes away
  cpu_queue_.reset();
  pool_.reset();
}

Queue& Runtime::queue(Device d) {
  if (d.kind == Device::CPU) return *cpu_queue_;
  std::string why;
  Backend* b = find_backend(d.kind, &why);
  if (!b) fail(ErrorCode::Device, "device " + d.name() + " is not available: " + why);
  const BackendStatus& s = b->status();
  if (!s.usable) fail(ErrorCode::Device, "device " + d.name() + " is not available: " + s.reason);
  if (d.index < 0 || d.index >= int(s.devices.size()))
    fail(ErrorCode::Device, "device " + d.name() + " does not exist: " + std::to_string(s.devices.size()) +
                                " CUDA device(s) found");
  std::lock_guard<std::mutex> lock(cuda_mu_);
  if (cuda_queues_.size() < s.devices.size()) cuda_queues_.resize(s.devices.size());
  std::unique_ptr<Queue>& q = cuda_queues_[size_t(d.index)];
  if (!q) q = std::make_unique<Queue>(d.name());
  return *q;
}

void Runtime::check_lost(Device d) {
  if (d.kind == Device::CPU) return;
  const std::string why = backend(d.kind).lost(d.index);
  if (!why.empty())
    fail(ErrorCode::DeviceLost, d.name() + " is lost (" + why + "): the tensors and models on it are gone, and nothing more can run there");
}

}  // namespace ignis::ops
