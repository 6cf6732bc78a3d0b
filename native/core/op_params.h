// Parameters of the ops, shared by the op entry points (native/ops), the CPU kernels
// (native/cpu) and the CUDA kernels (native/cuda). Plain structs, no behaviour.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ignis {

enum class Activation : uint8_t { none, gelu, silu, relu, Count };
inline constexpr const char* kActivationNames[] = {"none", "gelu", "silu", "relu"};
static_assert(sizeof(kActivationNames) / sizeof(kActivationNames[0]) == size_t(Activation::Count),
              "every activation needs a name");

enum class BinaryOp : uint8_t { add, mul, Count };
inline constexpr const char* kBinaryOpNames[] = {"add", "mul"};
static_assert(sizeof(kBinaryOpNames) / sizeof(kBinaryOpNames[0]) == size_t(BinaryOp::Count),
              "every binary op needs a name");

struct MatmulParams {
  bool transpose_b = false;  // b is [..., N, K] instead of [..., K, N]
  Activation activation = Activation::none;
};

// sample(): softmax(logits / temperature) kept to the top_k best ids (0: all) and then to the
// fewest whose probability reaches top_p; the draw hashes (seed, counter, row).
struct SampleParams {
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;
  double top_p = 1.0;        // (0, 1]
  uint64_t seed = 0, counter = 0;
};

struct AttentionParams {
  bool causal = false;
  float scale = 0.f;   // softmax(scale * Q K^T); the entry point fills 1/sqrt(headDim) if unset
  int64_t kv_len = 0;  // keys/values attended: rows [0, kv_len) of k and v
  int64_t q_pos0 = 0;  // absolute position of query row 0 (causal: row i sees keys <= q_pos0 + i)
  // CUDA graphs only: a device pointer to a position that kv_len and q_pos0 are both increased
  // by when the kernel runs (a replayed graph reads the run's position there); the launch is
  // then sized for k's full rows. Null everywhere else.
  const int64_t* pos_dev = nullptr;
};

}  // namespace ignis
