// Device names and the per-instance runtime (thread pool + device queues).
#include "runtime.h"

#include <cstdlib>

#ifdef IGNIS_WITH_CUDA
#include "../cuda/runtime.h"
#endif
#ifndef IGNIS_NO_CUDA_REASON
#define IGNIS_NO_CUDA_REASON "this addon was built without CUDA support"
#endif

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
      cpu_queue_(std::make_unique<Queue>("cpu")) {}

Runtime::~Runtime() {
  cpu_queue_.reset();  // joins the worker before the pool it uses goes away
  pool_.reset();
}

Queue& Runtime::queue(Device d) {
  if (d.kind == Device::CPU) return *cpu_queue_;
#ifdef IGNIS_WITH_CUDA
  const cuda::Availability& a = cuda::probe();
  if (!a.usable) fail(ErrorCode::Device, "device " + d.name() + " is not available: " + a.reason);
  if (d.index >= int(a.devices.size()))
    fail(ErrorCode::Device, "device " + d.name() + " does not exist: " +
                                std::to_string(a.devices.size()) + " CUDA device(s) found");
  fail(ErrorCode::Device, "device " + d.name() + " is not available: " + a.reason);
#else
  fail(ErrorCode::Device, "device " + d.name() + " is not available: " IGNIS_NO_CUDA_REASON);
#endif
}

void Runtime::throw_pending(Device d) {
  if (KernelError e = queue(d).take_error()) throw Error(*e);
}

}  // namespace ignis::ops
