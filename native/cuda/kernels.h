// The CUDA kernels' entry points, seen from host C++ (no CUDA headers here, so native/ops can
// include it). Each enqueues its kernels on the launch's stream and returns: none synchronizes.
// The contracts are those of native/cpu/cpu.h (the op entry points have checked shapes, dtypes
// and devices; float storage is f32, f16 or bf16 with f32 accumulation). A failed launch
// throws E_CUDA; bad data (an id out of range) is recorded in the device's Fault record and
// reported by the device's next synchronization.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/op.h"
#include "../core/tensor.h"

namespace ignis::cuda {

class FaultRecord;  // runtime.h

// The first error the kernels of one task (or one recorded graph) found in the data. It lives in
// host-mapped memory: kernels write it through a device pointer, the host reads it after a
// stream synchronization. code == 0: none.
enum class FaultOp : int32_t { none, embedding, kv_write, paged_sequence, paged_position, paged_block, Count };
struct Fault {
  int32_t code;   // 0, or 1 + an ErrorCode (the first kernel to set it wins)
  int32_t op;     // FaultOp
  int64_t value;  // the bad value (an id)
  int64_t index;  // where it was (element index of ids)
  int64_t limit;  // the bound it broke (the table's rows)
};

// What every kernel entry point is given: the device, its stream and fault record, and what
// a launcher needs to pick its configuration.
struct Launch {
  int device = 0;
  void* stream = nullptr;   // cudaStream_t
  // The fault record of this task, or of the CUDA graph being recorded (runtime.h FaultRecord):
  // its own, so that bad data one task's kernel finds fails that task and no other.
  Fault* fault = nullptr;
  FaultRecord* record = nullptr;  // the host side of `fault`
  mutable bool fault_used = false;
  // For a kernel that can find bad data: the record to report it in. The task then waits for
  // its kernels when it ends and throws what they reported (a recorded graph, at each replay).
  Fault* fault_record() const {
    fault_used = true;
    return fault;
  }
  int sm_count = 0;         // multiprocessors
  int cc = 0;               // compute capability, 10 * major + minor (80, 86, 89, 90)
  size_t smem_optin = 0;    // shared memory per block a kernel may opt in to (bytes)
  // Device memory for this launch's temporaries: valid until the launch's kernels have run
  // (the queued task keeps it, or the captured CUDA graph that recorded the launch does).
  void* scratch(size_t bytes) const;
  std::vector<std::shared_ptr<Storage>>* keep = nullptr;
};

// --- matmul (matmul.cu) ------------------------------------------------------------------------
// out [batch..., M, N] = act(a [batchA..., M, K] @ b [batchB..., K, N] (or b [..., N, K] with
// transpose_b) + bias [N]); batch dims broadcast numpy-style. Tensor cores (mma.sync, sm_80+)
// for f16/bf16; f32 as documented in matmul.cu.
void matmul(const Launch& L, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor* bias,
            const MatmulParams& p);

// --- int8 weights (quant.cu) -------------------------------------------------------------------
// Same layout and rounding as cpu::quantize: scales [N, K / group] f32 = max|w| / 127 (1 for an
// all-zero group), q [N, K] i8 = round-half-even(w / scale) clamped to [-127, 127].
void quantize(const Launch& L, const Tensor& q, const Tensor& scales, const Tensor& w, int64_t group);
void dequantize(const Launch& L, const Tensor& out, const Tensor& q, const Tensor& scales, int64_t group);
// out [..., M, N] = act(x [..., M, K] @ dequant(q, scales)^T + bias [N]): a memory-bound GEMV
// for M <= 8 (each weight byte read once, 16-byte loads), a tiled GEMM above.
void matmul_q(const Launch& L, const Tensor& out, const Tensor& x, const Tensor& q, const Tensor& scales,
              int64_t group, const Tensor* bias, Activation act);

// --- attention (attention.cu) --------------------------------------------------------------------
// As cpu::attention: flash-style prefill (online softmax, causal, GQA) and, for one query row,
// split-KV decode.
void attention(const Launch& L, const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
               const AttentionParams& p);
// As cpu::kv_append; with position_dev (CUDA graphs), the rows start at position + *position_dev.
void kv_append(const Launch& L, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k,
               const Tensor& v, int64_t position, const int64_t* position_dev = nullptr);

// --- the paged KV cache (paged.cu): cpu::kv_write and cpu::paged_attention; a bad index is a
// Fault (kv_write then writes nothing; paged_attention writes zeros for that row). headDim <= 256.
void kv_write(const Launch& L, const Tensor& pool_k, const Tensor& pool_v, const Tensor& k, const Tensor& v,
              const Tensor& slots);
void paged_attention(const Launch& L, const Tensor& out, const Tensor& q, const Tensor& pool_k, const Tensor& pool_v,
                     const Tensor& tables, const Tensor& rows, const PagedAttentionParams& p);

// --- row-wise and elementwise ops (norm.cu, activation.cu, softmax.cu, rope.cu, embedding.cu,
// binary.cu, fill.cu) -----------------------------------------------------------------------------
void rmsnorm(const Launch& L, const Tensor& out, const Tensor& x, const Tensor& weight, float eps);
void layernorm(const Launch& L, const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
               float eps);
void activation(const Launch& L, const Tensor& out, const Tensor& x, Activation act);
void softmax(const Launch& L, const Tensor& out, const Tensor& x, int axis);
void argmax(const Launch& L, const Tensor& out, const Tensor& x);  // argmax.cu
// cpu::rope semantics. With position_dev (CUDA graphs), token s is at p.position + *position_dev + s;
// with positions (i32 [B, S]), token (b, s) at positions[b, s].
void rope(const Launch& L, const Tensor& out, const Tensor& x, const RopeParams& p,
          const int64_t* position_dev = nullptr, const Tensor* positions = nullptr);
// An id outside [0, V) writes zeros for its row and records a Fault (FaultOp::embedding).
void embedding(const Launch& L, const Tensor& out, const Tensor& ids, const Tensor& table);
void binary(const Launch& L, const Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op);
void fill(const Launch& L, const Tensor& out, double value);
// The same samples as cpu::randn (native/core/random.h), element for element.
void randn(const Launch& L, const Tensor& out, uint64_t seed);
void cast(const Launch& L, const Tensor& out, const Tensor& x);

}  // namespace ignis::cuda
