// Every op once: its id, its name and its parameter struct, as X-macro lists, so adding an op,
// an activation or a binary op fails to compile until every table and every backend's
// dispatch switch knows it. The shape rules live in native/ops (the op table), the kernels in
// each backend. Plain data, shared by the op table, the backends and the binding; kernels of
// both backends include it.
//
// A params struct lists its fields for the binding with fields(v): v("jsName", member) for
// each, in the order and with the names lib/ passes them (lib/native-tables.ts).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "dtype.h"

namespace ignis {

// --- activations (the elementwise op, and matmul's fused epilogue) ------------------------------
#define IGNIS_ACTIVATIONS(X) X(none) X(gelu) X(silu) X(relu) X(tanh)

enum class Activation : uint8_t {
#define IGNIS_X(name) name,
  IGNIS_ACTIVATIONS(IGNIS_X)
#undef IGNIS_X
      Count
};
inline constexpr const char* kActivationNames[] = {
#define IGNIS_X(name) #name,
    IGNIS_ACTIVATIONS(IGNIS_X)
#undef IGNIS_X
};
static_assert(sizeof(kActivationNames) / sizeof(kActivationNames[0]) == size_t(Activation::Count));

// --- binary ops ------------------------------------------------------------------------------
#define IGNIS_BINARY_OPS(X) X(add) X(mul)

enum class BinaryOp : uint8_t {
#define IGNIS_X(name) name,
  IGNIS_BINARY_OPS(IGNIS_X)
#undef IGNIS_X
      Count
};
inline constexpr const char* kBinaryOpNames[] = {
#define IGNIS_X(name) #name,
    IGNIS_BINARY_OPS(IGNIS_X)
#undef IGNIS_X
};
static_assert(sizeof(kBinaryOpNames) / sizeof(kBinaryOpNames[0]) == size_t(BinaryOp::Count));

// --- parameters, one struct per op ---------------------------------------------------------------
// A size given as a parameter that a graph may leave symbolic: >= 0 a size, < 0 the symbol
// -1 - value, bound by the inputs at run time (the binding reads a number or a symbol name).
struct SymDim {
  int64_t value = 0;
};

struct MatmulParams {
  bool transpose_b = false;  // b is [..., N, K] instead of [..., K, N]
  Activation activation = Activation::none;
  template <class V> void fields(V&& v) { v("transposeB", transpose_b); v("activation", activation); }
};
struct MatmulQParams {
  int64_t group = 0;  // groupSize: K elements per scale
  Activation activation = Activation::none;
  // A call of at most 8 rows (a decode step) quantizes x's rows per group as the weights are
  // (core/quant.h) and takes integer dot products: sum_g s_w s_x sum_k q_w q_x. Larger calls
  // keep x in f32. CPU only.
  bool quantize_x = false;
  template <class V> void fields(V&& v) {
    v("groupSize", group); v("activation", activation); v("int8Activations", quantize_x);
  }
};
struct MatmulPackedParams {
  int64_t n = 0;  // N: the packed weight holds ceil(N / kPanelWidth) panels
  Activation activation = Activation::none;
  template <class V> void fields(V&& v) { v("N", n); v("activation", activation); }
};
struct PackWeightParams {
  bool transpose_b = false;  // b is [N, K]
  template <class V> void fields(V&& v) { v("transposeB", transpose_b); }
};
struct QuantizeParams {
  int64_t group = 0;
  DType scales = DType::f32;  // of the scales: f32, or f16 (each rounded up onto f16's grid)
  template <class V> void fields(V&& v) { v("groupSize", group); v("scales", scales); }
};
struct DequantizeParams {
  int64_t group = 0;
  DType dtype = DType::f32;  // of the output: f32, f16 or bf16
  template <class V> void fields(V&& v) { v("groupSize", group); v("dtype", dtype); }
};
struct AttentionParams {
  bool causal = false;
  float scale = 0.f;   // softmax(scale * Q K^T); 0: 1/sqrt(headDim)
  // Keys/values attended: rows [0, kv_len) of k and v. < 0: settled when the op is enqueued:
  // q_pos0 + Sq when q_pos0 >= 0 (the queries are the newest rows of a cache), else all of k's.
  int64_t kv_len = 0;
  // Absolute position of query row 0 (causal: row i sees keys <= q_pos0 + i). < 0: Skv - Sq
  // (at least 0), the queries being the last rows of k.
  int64_t q_pos0 = 0;
  // CUDA graphs only: a device pointer to a position that kv_len and q_pos0 are both increased
  // by when the kernel runs (a replayed graph reads the run's position there); the launch is
  // then sized for k's full rows. Null everywhere else; not a field the binding sets.
  const int64_t* pos_dev = nullptr;
  // > 0 (causal only): the query at position p sees keys (p - window, p] only, a sliding window
  // (transformers' sliding_window); keys before it are skipped a tile at a time, not masked.
  int64_t window = 0;
  // > 0: each score s = scale q.k becomes softcap tanh(s / softcap) before the softmax (Gemma 2's
  // attn_logit_softcapping); 0: none
  float softcap = 0.f;
  template <class V> void fields(V&& v) {
    v("causal", causal); v("scale", scale); v("kvLen", kv_len); v("qPos0", q_pos0); v("window", window);
    v("softcap", softcap);
  }
};
struct KvAppendParams {
  int64_t position = 0;  // the cache row k's first row goes to
  template <class V> void fields(V&& v) { v("position", position); }
};
// A paged KV cache (vLLM's layout): a pool of blocks [blocks, blockSize, Hk, D] per k and v,
// each sequence's rows in the blocks its block table lists. kv_write puts new rows at given
// slots (block * blockSize + offset); paged_attention runs each query row against its own
// sequence's rows, so sequences of any lengths and positions share one batch.
struct KvWriteParams {
  template <class V> void fields(V&&) {}
};
struct PagedAttentionParams {
  float scale = 0.f;  // softmax(scale * q k^T); 0: 1/sqrt(headDim)
  int64_t window = 0;  // > 0: the row at position p sees keys (p - window, p] only (a sliding window)
  float softcap = 0.f;  // > 0: each score s becomes softcap tanh(s / softcap) (Gemma 2)
  template <class V> void fields(V&& v) { v("scale", scale); v("window", window); v("softcap", softcap); }
};
struct RmsnormParams {
  float eps = 1e-5f;
  template <class V> void fields(V&& v) { v("eps", eps); }
};
struct LayernormParams {
  float eps = 1e-5f;
  template <class V> void fields(V&& v) { v("eps", eps); }
};
struct ActivationParams {
  Activation activation = Activation::none;
  template <class V> void fields(V&& v) { v("activation", activation); }
};
struct SoftmaxParams {
  int64_t axis = -1;  // counted from the end when negative
  template <class V> void fields(V&& v) { v("axis", axis); }
};
struct ArgmaxParams {
  template <class V> void fields(V&&) {}
};
// sample(): softmax(logits / temperature) kept to the top_k best ids (0: all) and then to the
// fewest whose probability reaches top_p; the draw hashes (seed, counter, row).
struct SampleParams {
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;
  double top_p = 1.0;        // (0, 1]
  uint64_t seed = 0, counter = 0;
  template <class V> void fields(V&& v) {
    v("temperature", temperature); v("topK", top_k); v("topP", top_p); v("seed", seed); v("counter", counter);
  }
};
// A list of numbers given as a parameter, shared (not copied) by every queued copy of the params.
struct Numbers {
  std::shared_ptr<const std::vector<double>> v;
  size_t size() const { return v ? v->size() : 0; }
  const double* data() const { return v ? v->data() : nullptr; }
};
// The most frequencies rope takes as a list: headDim 512. A CUDA launch carries them by value.
inline constexpr int64_t kRopeMaxFreqs = 256;
struct RopeParams {
  int64_t position = 0;  // of token 0
  float theta = 10000.f;
  // The inverse frequencies f_i, i < D/2 (transformers' inv_freq) of a scaled rotation, in place
  // of theta^(-2i/D); empty: theta's.
  Numbers freqs;
  float scale = 1.f;  // cos and sin are multiplied by it (transformers' attention_scaling)
  template <class V> void fields(V&& v) {
    v("position", position); v("theta", theta); v("freqs", freqs); v("scale", scale);
  }
};
struct EmbeddingParams {
  template <class V> void fields(V&&) {}
};
struct BinaryParams {
  BinaryOp op = BinaryOp::add;
  template <class V> void fields(V&& v) { v("op", op); }
};
struct CastParams {
  DType dtype = DType::f32;  // of the output
  template <class V> void fields(V&& v) { v("dtype", dtype); }
};
struct RowsParams {
  int64_t start = 0;  // out = table[start : start + count]
  SymDim count;
  template <class V> void fields(V&& v) { v("start", start); v("count", count); }
};
struct LastParams {
  template <class V> void fields(V&&) {}
};
struct FillParams {
  double value = 0;  // i8/i32 take it truncated toward zero and clamped
  template <class V> void fields(V&& v) { v("value", value); }
};
struct RandnParams {
  uint64_t seed = 0;
  template <class V> void fields(V&& v) { v("seed", seed); }
};

// --- the ops -----------------------------------------------------------------------------------
// X(name, Params). The order is the OpId order and the OpParams alternative order.
#define IGNIS_OPS(X)                  \
  X(matmul, MatmulParams)             \
  X(matmul_q, MatmulQParams)          \
  X(matmul_packed, MatmulPackedParams)\
  X(pack_weight, PackWeightParams)    \
  X(quantize, QuantizeParams)         \
  X(dequantize, DequantizeParams)     \
  X(attention, AttentionParams)       \
  X(kv_append, KvAppendParams)        \
  X(kv_write, KvWriteParams)          \
  X(paged_attention, PagedAttentionParams) \
  X(rmsnorm, RmsnormParams)           \
  X(layernorm, LayernormParams)       \
  X(activation, ActivationParams)     \
  X(softmax, SoftmaxParams)           \
  X(argmax, ArgmaxParams)             \
  X(sample, SampleParams)             \
  X(rope, RopeParams)                 \
  X(embedding, EmbeddingParams)       \
  X(binary, BinaryParams)             \
  X(cast, CastParams)                 \
  X(rows, RowsParams)                 \
  X(last, LastParams)                 \
  X(fill, FillParams)                 \
  X(randn, RandnParams)

enum class OpId : uint8_t {
#define IGNIS_X(name, P) name,
  IGNIS_OPS(IGNIS_X)
#undef IGNIS_X
      Count
};
inline constexpr const char* kOpNames[] = {
#define IGNIS_X(name, P) #name,
    IGNIS_OPS(IGNIS_X)
#undef IGNIS_X
};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == size_t(OpId::Count));
inline const char* op_name(OpId op) { return kOpNames[size_t(op)]; }

// One op's parameters: the alternative's index is its OpId, so the params say which op they are.
// (The trailing monostate only closes the list; no op has it.)
#define IGNIS_X(name, P) P,
using OpParams = std::variant<IGNIS_OPS(IGNIS_X) std::monostate>;
#undef IGNIS_X
static_assert(std::variant_size_v<OpParams> == size_t(OpId::Count) + 1);
inline OpId op_of(const OpParams& p) { return OpId(p.index()); }
// An op's params with every field at its default.
OpParams default_params(OpId op);


}  // namespace ignis
