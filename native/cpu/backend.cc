// The CPU backend: memory through host_cache, and the one dispatch switch from an op to its CPU
// kernel (cpu.h). Every op has a CPU kernel, for every dtype the op table accepts.
#include "backend.h"

#include <cstring>

#include "cpu.h"
#include "host_cache.h"

namespace ignis::cpu {
namespace {

class CpuBackend final : public Backend {
 public:
  Device::Kind kind() const override { return Device::CPU; }
  const BackendStatus& status() override {
    static const BackendStatus s{true, "", {}};
    return s;
  }

  void* allocate(int, size_t bytes) override {
    void* p = host_cache::allocate(bytes);
    if (!p) fail(ErrorCode::OOM, "out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void free(int, void* p, size_t bytes) noexcept override { host_cache::release(p, bytes); }
  MemoryStats memory(int) override {
    const host_cache::Stats s = host_cache::stats();
    return {int64_t(s.allocated), int64_t(s.reserved), int64_t(s.peak)};
  }
  int64_t empty_cache(int) override { return int64_t(host_cache::empty()); }

  void copy_in(int, void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy_out(int, void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void synchronize(int) override {}  // the worker ran every kernel before this task
  void finish(const Exec&) override {}  // the kernels have run, and thrown what they found

  void task(int, ThreadPool& pool, const std::function<void(const Exec&)>& fn) override { fn(Exec{pool, nullptr}); }
  bool supports(OpId, DType) const override { return true; }
  void run(const Exec& e, const KernelCall& c) override;
};

void CpuBackend::run(const Exec& e, const KernelCall& c) {
  ThreadPool& pool = e.pool;
  switch (c.op()) {
    case OpId::matmul:
      return matmul(pool, c.output(), c.input(0), c.input(1), c.optional(2), c.p<MatmulParams>());
    case OpId::matmul_q: {
      const auto& p = c.p<MatmulQParams>();
      return matmul_q(pool, c.output(), c.input(0), c.input(1), c.input(2), p.group, c.optional(3), p.activation, p.quantize_x);
    }
    case OpId::matmul_packed:
      return matmul_packed(pool, c.output(), c.input(0), c.input(1), c.optional(2), c.p<MatmulPackedParams>().activation);
    case OpId::pack_weight: return pack_weight(pool, c.output(), c.input(0), c.p<PackWeightParams>().transpose_b);
    case OpId::quantize: return quantize(pool, c.output(0), c.output(1), c.input(0), c.p<QuantizeParams>().group);
    case OpId::dequantize: return dequantize(pool, c.output(), c.input(0), c.input(1), c.p<DequantizeParams>().group);
    case OpId::attention:
      return attention(pool, c.output(), c.input(0), c.input(1), c.input(2), c.p<AttentionParams>());
    case OpId::kv_write:  // the pools are operands 0 and 1, written in place
      return kv_write(pool, c.input(0), c.input(1), c.input(2), c.input(3), c.input(4));
    case OpId::paged_attention:
      return paged_attention(pool, c.output(), c.input(0), c.input(1), c.input(2), c.input(3), c.input(4),
                             c.p<PagedAttentionParams>());
    case OpId::kv_append:  // the caches are operands 0 and 1, written in place
      return kv_append(pool, c.input(0), c.input(1), c.input(2), c.input(3), c.p<KvAppendParams>().position);
    case OpId::rmsnorm: return rmsnorm(pool, c.output(), c.input(0), c.input(1), c.p<RmsnormParams>().eps);
    case OpId::layernorm:
      return layernorm(pool, c.output(), c.input(0), c.input(1), c.input(2), c.p<LayernormParams>().eps);
    case OpId::activation: return activation(pool, c.output(), c.input(0), c.p<ActivationParams>().activation);
    case OpId::softmax: return softmax(pool, c.output(), c.input(0), int(c.p<SoftmaxParams>().axis));
    case OpId::argmax: return argmax(pool, c.output(), c.input(0));
    case OpId::sample: return sample(pool, c.output(), c.input(0), c.p<SampleParams>());
    case OpId::rope: {
      return rope(pool, c.output(), c.input(0), c.p<RopeParams>(), c.optional(1));
    }
    case OpId::embedding: return embedding(pool, c.output(), c.input(0), c.input(1));
    case OpId::binary: return binary(pool, c.output(), c.input(0), c.input(1), c.p<BinaryParams>().op);
    case OpId::cast: return cast(pool, c.output(), c.input(0));
    case OpId::rows: return rows(pool, c.output(), c.input(0), c.p<RowsParams>().start);
    case OpId::last: return last(pool, c.output(), c.input(0));
    case OpId::fill: return fill(pool, c.output(), c.p<FillParams>().value);
    case OpId::randn: return randn(pool, c.output(), c.p<RandnParams>().seed);
    case OpId::Count: break;
  }
  fail(ErrorCode::Internal, "cpu: not an op");
}

}  // namespace

Backend* backend() {
  static CpuBackend* b = new CpuBackend();  // never destroyed: tensors may be freed at exit
  return b;
}

}  // namespace ignis::cpu
