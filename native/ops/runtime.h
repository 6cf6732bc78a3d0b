// Runtime: what one loaded copy of the addon owns (no globals, so worker_threads each get
// their own): the CPU thread pool and one execution queue per device. A CUDA device's queue
// is a worker like the CPU's whose tasks issue kernels to the device's stream.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/queue.h"
#include "../core/thread_pool.h"

namespace ignis::ops {

// Parses "cpu", "cuda" (= "cuda:0") or "cuda:N"; throws E_DEVICE naming the string otherwise.
Device parse_device(const std::string& name);

// Fills the backend registry of core/backend.h (backends.cc), once per process.
void register_backends();

class Runtime {
 public:
  explicit Runtime(int threads = 0);
  ~Runtime();
  ThreadPool& pool() { return *pool_; }
  // The queue of a usable device; throws E_DEVICE (saying why) for a device that is not.
  Queue& queue(Device d);
  // Throws E_DEVICE_LOST where d's context is gone (the backend's lost()); an op call checks it
  // before it queues anything. Kernel-time errors are never thrown here: they stay with the
  // outputs of the work that raised them.
  void check_lost(Device d);

 private:
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Queue> cpu_queue_;
  std::mutex cuda_mu_;
  std::vector<std::unique_ptr<Queue>> cuda_queues_;  // by device index, made on first use
};

}  // namespace ignis::ops
