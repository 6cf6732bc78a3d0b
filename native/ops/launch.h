// launch(): enqueue a kernel on a device's queue so that failures flow the way the execution
// model says. If an input came from a failed op, the kernel is skipped and its outputs carry
// the same error; if the kernel throws, its outputs carry the error and so does the queue
// (the next call on the device throws it). done, when given, is called on the worker once the
// task is over, with the error the first output carries (or none).
//
// The kernel is fn(const Exec&): on the CPU it runs with e.pool; on a CUDA device e.cuda is
// the device's launch context (its stream) and fn enqueues the CUDA kernels there (kernel.h
// does that choice once per op). Scratch
// memory a CUDA kernel asks for lives until the task ends (stream order keeps reuse safe).
#pragma once
#include <functional>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "../cuda/kernels.h"
#include "runtime.h"
#ifdef IGNIS_WITH_CUDA
#include "../cuda/runtime.h"
#endif

namespace ignis::ops {

struct Exec {
  ThreadPool& pool;
  const cuda::Launch* cuda;  // null on the CPU
};

template <class Fn>
void launch(Runtime& rt, Device device, std::vector<Tensor> inputs, std::vector<Tensor> outputs, Fn&& fn,
            std::function<void(KernelError)> done = {}) {
  Queue& q = rt.queue(device);
  q.enqueue([&q, &pool = rt.pool(), device, inputs = std::move(inputs), outputs = std::move(outputs),
             fn = std::forward<Fn>(fn), done = std::move(done)]() mutable {
    auto body = [&] {
      for (const Tensor& in : inputs) {
        if (KernelError e = in.storage->error()) {
          for (const Tensor& out : outputs) out.storage->set_error(e);
          return;
        }
      }
      KernelError err;
      try {
        if (device.kind == Device::CUDA) {
#ifdef IGNIS_WITH_CUDA
          std::vector<std::shared_ptr<Storage>> keep;  // scratch: freed after the kernels are queued
          const cuda::Launch L = cuda::launch_for(device.index, &keep);
          fn(Exec{pool, &L});
#endif
        } else {
          fn(Exec{pool, nullptr});
        }
        return;
      } catch (const Error& e) {
        err = std::make_shared<const Error>(e);
      } catch (const std::bad_alloc&) {
        err = std::make_shared<const Error>(ErrorCode::OOM, "out of host memory while a kernel ran");
      } catch (const std::exception& e) {
        err = std::make_shared<const Error>(ErrorCode::Internal, e.what());
      }
      for (const Tensor& out : outputs) out.storage->set_error(err);
      q.set_error(err);
    };
    body();
    if (done) done(outputs.empty() ? nullptr : outputs[0].storage->error());
  });
}

}  // namespace ignis::ops
