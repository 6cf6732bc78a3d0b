// launch(): enqueue work on a device's queue so that failures flow the way the execution model
// says. If an input came from a failed op, the work is skipped and its outputs carry the same
// error; if the work throws (bad data a kernel found, out of memory), its outputs carry the
// error: the reads of them, and of everything computed from them, reject with it, and nothing
// else sees it. done, when given, is called on the worker once the task is over, with the
// error the first output carries (or none).
//
// fn(e, inputs, outputs) runs with the device backend's launch context for the task (on a CUDA
// device, its stream: kernels are enqueued there; scratch memory they ask for lives until the
// task ends).
#pragma once
#include <functional>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "../core/backend.h"
#include "runtime.h"

namespace ignis::ops {

template <class Fn>
void launch(Runtime& rt, Device device, std::vector<Tensor> inputs, std::vector<Tensor> outputs, Fn&& fn,
            std::function<void(KernelError)> done = {}) {
  Queue& q = rt.queue(device);
  Backend& b = backend(device.kind);
  q.enqueue([&b, &pool = rt.pool(), device, inputs = std::move(inputs), outputs = std::move(outputs),
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
        b.task(device.index, pool, [&](const Exec& e) { fn(e, inputs, outputs); });
        return;
      } catch (const Error& e) {
        err = std::make_shared<const Error>(e);
      } catch (const std::bad_alloc&) {
        err = std::make_shared<const Error>(ErrorCode::OOM, "out of host memory while a kernel ran");
      } catch (const std::exception& e) {
        err = std::make_shared<const Error>(ErrorCode::Internal, e.what());
      }
      for (const Tensor& out : outputs) out.storage->set_error(err);
    };
    body();
    if (done) done(outputs.empty() ? nullptr : outputs[0].storage->error());
  });
}

}  // namespace ignis::ops
