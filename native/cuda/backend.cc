// The CUDA backend: the runtime glue of runtime.h behind the backend interface, and the one
// dispatch switch from an op to its CUDA entry point (kernels.h). Host C++ only; built only
// when nvcc is found.
#include "backend.h"

#include <cstdlib>
#include <string>

#include "kernels.h"
#include "runtime.h"

namespace ignis::cuda {
namespace {

// The ops with no CUDA kernel: their layouts or algorithms are the CPU's.
bool cpu_only(OpId op) { return op == OpId::sample || op == OpId::pack_weight || op == OpId::matmul_packed; }

class CudaBackend final : public Backend {
 public:
  Device::Kind kind() const override { return Device::CUDA; }
  const BackendStatus& status() override { return probe(); }

  void* allocate(int device, size_t bytes) override { return device_alloc(device, bytes); }
  void free(int device, void* p, size_t bytes) noexcept override { device_free(device, p, bytes); }
  ignis::MemoryStats memory(int device) override {
    const cuda::MemoryStats s = cuda::memory(device);
    return {s.allocated, s.reserved, s.peak};
  }
  int64_t empty_cache(int device) override {
    const int64_t before = cuda::memory(device).reserved;
    cuda::empty_cache();
    return before - cuda::memory(device).reserved;
  }

  void copy_in(int device, void* dst, const void* src, size_t bytes) override { upload(device, dst, src, bytes); }
  void copy_out(int device, void* dst, const void* src, size_t bytes) override { download(device, dst, src, bytes); }
  void synchronize(int device) override { cuda::synchronize(device); }
  std::string lost(int device) override { return cuda::lost(device); }
  void finish(const Exec& e) override {
    const Launch& L = *static_cast<const Launch*>(e.ctx);
    cuda::synchronize(L.device);
    if (L.fault_used && L.record)
      if (KernelError err = L.record->take()) throw Error(*err);
  }

  void task(int device, ThreadPool& pool, const std::function<void(const Exec&)>& fn) override {
    const std::string why = cuda::lost(device);
    if (!why.empty())
      fail(ErrorCode::DeviceLost, "cuda:" + std::to_string(device) + " is lost (" + why + "): nothing more can run there");
    // Issue the task's work with the device's stream to itself (runtime.h lock_stream).
    const auto stream = lock_stream(device);
    std::vector<std::shared_ptr<Storage>> keep;  // scratch: freed after the kernels are queued
    FaultRecord fault(device);  // after keep: returned to the pool first
    const Launch L = launch_for(device, &keep, fault);
    try {
      fn(Exec{pool, &L});
    } catch (...) {
      if (L.fault_used) fault.arm();
      throw;
    }
    if (L.fault_used) {  // a kernel that can find bad data was queued: this task's error, if it did
      fault.arm();
      cuda::synchronize(device);
      if (KernelError e = fault.take()) throw Error(*e);
    }
  }
  bool supports(OpId op, DType) const override { return !cpu_only(op); }
  // The kernels' window and soft-cap paths are written but have not yet run on a GPU: refused
  // by name until they pass there (IGNIS_CUDA_UNVERIFIED_ATTENTION=1 lifts that, for the device
  // check that verifies them).
  const char* lacks(const OpParams& p, const DType* in, int n) const override {
    if (std::holds_alternative<MatmulParams>(p) && n >= 2 && in[0] != in[1])
      return "a matmul of f32 activations with an f16 or bf16 weight (mixed dtypes) is computed on the CPU only, for now";
    static const bool lifted = [] {
      const char* e = std::getenv("IGNIS_CUDA_UNVERIFIED_ATTENTION");
      return e && std::string(e) == "1";
    }();
    if (const auto* m = std::get_if<MatmulQParams>(&p); m && m->quantize_x) return "int8 activations (matmul's int8Activations) are computed on the CPU only";
    // the int8 kernels read f32 scales
    const bool f16_scales = (std::holds_alternative<MatmulQParams>(p) && n >= 3 && in[2] == DType::f16) ||
                            (std::holds_alternative<DequantizeParams>(p) && n >= 2 && in[1] == DType::f16) ||
                            (std::holds_alternative<QuantizeParams>(p) && std::get<QuantizeParams>(p).scales == DType::f16);
    if (f16_scales) return "f16 scales (quantize's scales: 'f16') are computed on the CPU only, for now";
    if (lifted) return nullptr;
    // written, not yet run on a GPU (lifted for the device check, as the attention paths below)
    if (std::holds_alternative<RopeParams>(p) && n >= 2) return "per-token positions (rope's positions) are computed on the CPU only, for now";
    if (std::holds_alternative<KvWriteParams>(p) || std::holds_alternative<PagedAttentionParams>(p))
      return "the paged KV cache (kv_write, paged_attention) runs on the CPU only, for now";
    if (const auto* a = std::get_if<AttentionParams>(&p); a && a->window > 0) return "a sliding window (attention's window) is computed on the CPU only, for now";
    if (const auto* a = std::get_if<AttentionParams>(&p); a && a->softcap > 0.f) return "score soft-capping (attention's softcap) is computed on the CPU only, for now";
    return nullptr;
  }
  void run(const Exec& e, const KernelCall& c) override;
  std::unique_ptr<Recorder> recorder() override { return make_recorder(); }
};

void CudaBackend::run(const Exec& e, const KernelCall& c) {
  const Launch& L = *static_cast<const Launch*>(e.ctx);
  switch (c.op()) {
    case OpId::matmul:
      return matmul(L, c.output(), c.input(0), c.input(1), c.optional(2), c.p<MatmulParams>());
    case OpId::matmul_q: {
      const auto& p = c.p<MatmulQParams>();
      return matmul_q(L, c.output(), c.input(0), c.input(1), c.input(2), p.group, c.optional(3), p.activation);
    }
    case OpId::quantize: return quantize(L, c.output(0), c.output(1), c.input(0), c.p<QuantizeParams>().group);
    case OpId::dequantize: return dequantize(L, c.output(), c.input(0), c.input(1), c.p<DequantizeParams>().group);
    case OpId::attention:
      return attention(L, c.output(), c.input(0), c.input(1), c.input(2), c.p<AttentionParams>());
    case OpId::kv_append:  // the caches are operands 0 and 1, written in place
      return kv_append(L, c.input(0), c.input(1), c.input(2), c.input(3), c.p<KvAppendParams>().position, c.pos_dev);
    case OpId::rmsnorm: return rmsnorm(L, c.output(), c.input(0), c.input(1), c.p<RmsnormParams>().eps);
    case OpId::layernorm:
      return layernorm(L, c.output(), c.input(0), c.input(1), c.input(2), c.p<LayernormParams>().eps);
    case OpId::activation: return activation(L, c.output(), c.input(0), c.p<ActivationParams>().activation);
    case OpId::softmax: return softmax(L, c.output(), c.input(0), int(c.p<SoftmaxParams>().axis));
    case OpId::argmax: return argmax(L, c.output(), c.input(0));
    case OpId::rope: {
      return rope(L, c.output(), c.input(0), c.p<RopeParams>(), c.pos_dev, c.optional(1));
    }
    case OpId::kv_write:  // the pools are operands 0 and 1, written in place
      return kv_write(L, c.input(0), c.input(1), c.input(2), c.input(3), c.input(4));
    case OpId::paged_attention:
      return paged_attention(L, c.output(), c.input(0), c.input(1), c.input(2), c.input(3), c.input(4),
                             c.p<PagedAttentionParams>());
    case OpId::embedding: return embedding(L, c.output(), c.input(0), c.input(1));
    case OpId::binary: return binary(L, c.output(), c.input(0), c.input(1), c.p<BinaryParams>().op);
    case OpId::cast: return cast(L, c.output(), c.input(0));
    case OpId::rows: {  // out = table[start : start + out rows], a copy on the stream
      const Tensor& out = c.output();
      const size_t row = out.dim(0) ? out.nbytes() / size_t(out.dim(0)) : 0;
      return copy_async(L, out.raw(), static_cast<const char*>(c.input(0).raw()) + size_t(c.p<RowsParams>().start) * row,
                        out.nbytes());
    }
    case OpId::last: {  // out [B, 1, ...] = x [B, S, ...][:, S - 1]
      const Tensor &out = c.output(), &x = c.input(0);
      const int64_t B = x.dim(0), S = x.dim(1);
      if (B == 0 || S == 0) return;
      const size_t row = out.nbytes() / size_t(B);
      for (int64_t b = 0; b < B; b++)
        copy_async(L, static_cast<char*>(out.raw()) + size_t(b) * row,
                   static_cast<const char*>(x.raw()) + size_t(b * S + S - 1) * row, row);
      return;
    }
    case OpId::fill: return fill(L, c.output(), c.p<FillParams>().value);
    case OpId::randn: return randn(L, c.output(), c.p<RandnParams>().seed);
    case OpId::sample:
    case OpId::pack_weight:
    case OpId::matmul_packed:
      fail(ErrorCode::Device, std::string(op_name(c.op())) + ": runs on the CPU only");
    case OpId::Count: break;
  }
  fail(ErrorCode::Internal, "cuda: not an op");
}

}  // namespace

Backend* backend() {
  static CudaBackend* b = new CudaBackend();  // never destroyed: tensors may be freed at exit
  return b;
}

}  // namespace ignis::cuda
