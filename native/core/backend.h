// The backend interface: what a kind of device (the CPU, CUDA GPUs) gives the layers above it.
// Memory (allocate, free, figures, empty cache), copies in and out, synchronization, the launch
// context of a queued task, and the kernels: supports(op, dtype) and run(call), one dispatch
// switch per backend over the op list of op.h. native/cpu and native/cuda implement it; the
// one place that registers them (native/ops/backends.cc) is the only code that knows which
// backends this build has. core includes neither backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "op.h"
#include "tensor.h"

namespace ignis {

class ThreadPool;

// What a kernel runs with: the CPU's thread pool, and the backend's launch context for the
// task (a CUDA device's stream, fault record and properties: cuda::Launch), or null on the CPU.
struct Exec {
  ThreadPool& pool;
  const void* ctx;
};

// One kernel: the op (its params say which), its inputs (null for an absent optional one)
// and its outputs, all allocated and checked by the op table. pos_dev: CUDA graphs only, a
// device pointer to the run's position for the ops that take one (rope, kv_append; attention
// carries it in its params).
struct KernelCall {
  const OpParams& params;
  const Tensor* const* in;
  int n_in;
  const Tensor* const* out;
  int n_out;
  const int64_t* pos_dev = nullptr;

  OpId op() const { return op_of(params); }
  template <class P> const P& p() const { return std::get<P>(params); }
  const Tensor& input(int i) const { return *in[i]; }
  const Tensor* optional(int i) const { return i < n_in ? in[i] : nullptr; }
  const Tensor& output(int i = 0) const { return *out[i]; }
};

struct MemoryStats {
  int64_t allocated = 0;  // bytes in live buffers
  int64_t reserved = 0;   // bytes held from the system: live + cached
  int64_t peak = 0;       // the most `allocated` has been
};

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int64_t memory_bytes = 0;
  int multiprocessors = 0;
  std::string lost;  // info() only: why the device's context is gone (Backend::lost), or empty
};

// Whether ops may run on this kind of device, and why not.
struct BackendStatus {
  bool usable = false;
  std::string reason;  // when !usable
  std::vector<DeviceInfo> devices;
};

// A recorded sequence of kernels replayed as one launch (CUDA graphs), for one compiled plan.
// run() finds or records the recording for the run's symbol values and state, copies the
// inputs in, replays, and copies the output roots out, all queued on the task's context.
class Recorder {
 public:
  virtual ~Recorder() = default;
  // bind(inputs, roots) points the plan's views at the given tensors; record(exec,
  // positions_dev) issues every step with the run's integers read on the device.
  using Bind = std::function<void(const std::vector<Tensor>& inputs, const std::vector<Tensor>& roots)>;
  using Record = std::function<void(const Exec& e, const int64_t* positions_dev)>;
  virtual void run(const Exec& e, const std::vector<int64_t>& sym, const std::vector<Tensor>& state,
                   const std::vector<Tensor>& inputs, const std::vector<Tensor>& roots,
                   const std::vector<int64_t>& scalars, const Bind& bind, const Record& record) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device::Kind kind() const = 0;
  // Asks the system once (cached): the devices and whether ops may run on them.
  virtual const BackendStatus& status() = 0;

  // --- memory ------------------------------------------------------------------------------
  // `bytes` on the device; throws E_OOM (naming the size) when it cannot.
  virtual void* allocate(int device, size_t bytes) = 0;
  virtual void free(int device, void* p, size_t bytes) noexcept = 0;
  virtual MemoryStats memory(int device) = 0;
  // Returns cached free memory to the system; the bytes returned.
  virtual int64_t empty_cache(int device) = 0;

  // --- copies and waiting (the device's worker thread, except copy_in) ---------------------------
  // host -> device: src may be reused when this returns; the copy is ordered before later work.
  virtual void copy_in(int device, void* dst, const void* src, size_t bytes) = 0;
  // device -> host: waits until the copy (and everything queued before it) is done.
  virtual void copy_out(int device, void* dst, const void* src, size_t bytes) = 0;
  // Waits for everything queued on the device; throws the error the device hit.
  virtual void synchronize(int device) = 0;
  // Inside a task: waits for the work it has queued so far, and throws the bad data its kernels
  // found (an id out of range: the task's own error), or the error the device hit.
  virtual void finish(const Exec& e) = 0;
  // Why the device's context is gone (an illegal address, an uncorrectable ECC error), after
  // which nothing on it can run; empty while it works.
  virtual std::string lost(int /*device*/) { return {}; }

  // --- kernels -------------------------------------------------------------------------------
  // Runs fn with the launch context of one queued task on `device`; scratch memory the kernels
  // ask for lives until the task's work is done. Bad data a kernel of the task finds (an id out
  // of range) is thrown here, the task's own error (on a device: the task waits for its kernels
  // when one of them can find any).
  virtual void task(int device, ThreadPool& pool, const std::function<void(const Exec&)>& fn) = 0;
  // Whether run() has a kernel for op on inputs of dtype (the op table has checked the rest).
  virtual bool supports(OpId op, DType dtype) const = 0;
  // What of these params, with these operand dtypes (in[0, n)), run() has no kernel for (a
  // phrase naming it), or null.
  virtual const char* lacks(const OpParams&, const DType* /*in*/, int /*n*/) const { return nullptr; }
  // Runs (CPU) or enqueues (CUDA) the op's kernel.
  virtual void run(const Exec& e, const KernelCall& call) = 0;
  // A recorder for one plan, or null where the backend replays nothing.
  virtual std::unique_ptr<Recorder> recorder() { return nullptr; }
};

// The registry, filled once by ops::register_backends(). backend() throws E_DEVICE with the
// reason this build has none for a kind of device.
void register_backend(Backend* b);
void register_missing_backend(Device::Kind kind, const char* reason);
Backend& backend(Device::Kind kind);
// Null when this build has no backend for the kind; *reason says why.
Backend* find_backend(Device::Kind kind, std::string* reason = nullptr);

}  // namespace ignis
