// What the binding and the plans call: the eager op call (every op of the op table through one
// path: its rules, its outputs allocated, its kernel enqueued), and the calls that make, move
// and read tensors. None waits for a kernel; none knows N-API.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "runtime.h"

namespace ignis::ops {

// --- ops -----------------------------------------------------------------------------------------
// Checks the operands against the op's rules (E_SHAPE / E_DTYPE / E_DEVICE naming them),
// allocates the outputs and enqueues the kernel on the operands' device; returns the outputs
// at once (none for an op that writes in place). in: the operands in the op's order, absent
// optional ones left off the end. The params say which op (core/op.h).
std::vector<Tensor> call(Runtime& rt, OpParams p, const std::vector<Tensor>& in);
// The name messages give the op: its table name, or the activation's or binary op's own.
const char* display_name(const OpParams& p);
// Runs one checked op's kernel on a backend, in a task's launch context.
void run_kernel(const Exec& e, Backend& b, const OpParams& p, const Tensor* const* in, int n_in,
                const Tensor* const* out, int n_out, const int64_t* pos_dev = nullptr);

// --- tensors -------------------------------------------------------------------------------------
// A tensor holding `bytes` (host memory in `src_type` layout, count elements) converted to
// `dtype`: any float src_type for a float dtype (the conversion happens here), else == dtype.
// Copies synchronously, so the caller may reuse its buffer at once.
Tensor from_host(Runtime& rt, const void* src, DType src_type, const Shape& shape, DType dtype, Device device);
// n elements of src_type at src -> dtype at dst (same dtype: a copy; float <-> float converted).
void convert_host(const void* src, DType src_type, void* dst, DType dtype, size_t n);
Tensor full(Runtime& rt, const Shape& shape, DType dtype, Device device, double value);
Tensor randn(Runtime& rt, const Shape& shape, DType dtype, Device device, uint64_t seed);
Tensor to_device(Runtime& rt, const Tensor& x, Device device);
// A view of x's storage with another shape of the same element count.
Tensor reshape(const Tensor& x, const Shape& shape);
// The element type read() delivers: f32 for float dtypes, the dtype itself otherwise.
DType read_type(DType t);
// Enqueues a copy of x's elements (as read_type) into dst, which must hold x.numel() of them
// and stay valid until done runs (dst null: nothing is copied; done only reports x's state).
// done(error) runs on the queue's thread: error is null on success, or the kernel-time error of
// the op that produced x.
void read(Runtime& rt, const Tensor& x, void* dst, std::function<void(KernelError)> done);

// Clears the errors the tensors carry (a failed op's mark), queued on each one's device after
// the ops before it: a KV cache reset, a state reset.
void clear_errors(Runtime& rt, const std::vector<Tensor>& xs);

// --- what the build and the machine offer ----------------------------------------------------------
struct Info {
  std::string simd;  // the CPU kernels' vector code: "avx2+fma" or "scalar"
  int threads = 0;
  bool cuda_compiled = false;
  BackendStatus cuda;  // devices, and why CUDA is not usable when it is not
};
Info info(Runtime& rt);
// A device's allocator figures; E_DEVICE for a device that is not usable.
MemoryStats memory(Runtime& rt, Device d);
// Returns a device's cached free memory to the system; the bytes returned.
int64_t empty_cache(Runtime& rt, Device d);

}  // namespace ignis::ops
