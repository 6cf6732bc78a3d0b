// The CPU kernels. Each runs on the CPU queue's worker thread, with `pool` for parallelism,
// and writes into outputs its entry point (native/ops) has already allocated and checked:
// shapes and dtypes are valid when a kernel is called. Float kernels take f32, f16 or bf16
// storage and accumulate in f32. A kernel that finds bad data (an id out of range) throws
// ignis::Error; it never reads or writes out of bounds.
#pragma once
#include "../core/op.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"

namespace ignis::cpu {

// out [batch..., M, N] = act(a [batchA..., M, K] @ b [batchB..., K, N] + bias [N]).
// transpose_b: b is [batchB..., N, K]. Batch dims broadcast numpy-style (out's batch shape is
// the broadcast of batchA and batchB; a 2-D b is shared by every batch). bias may be null.
// a, b, bias and out have one float dtype.
void matmul(ThreadPool& pool, const Tensor& out, const Tensor& a, const Tensor& b,
            const Tensor* bias, const MatmulParams& p);

// out f32 [ceil(N / 16), K, 16] = b (b [K, N], or [N, K] when transpose_b) in the GEMM's panel
// layout: panel q holds columns [16q, 16q + 16) row by row, columns past N zero. Done once for a
// fixed weight, it takes the packing out of every later matmul_packed.
void pack_weight(ThreadPool& pool, const Tensor& out, const Tensor& b, bool transpose_b);
// out [..., M, N] = act(x [..., M, K] @ B + bias [N]) with B from pack_weight (packed
// [ceil(N / 16), K, 16]); x, bias and out share a float dtype.
void matmul_packed(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& packed,
                   const Tensor* bias, Activation act);

// Symmetric int8 quantization of w [N, K] (float) in groups of `group` along K:
// scales [N, K / group] (f32) = max|w| / 127 per group (1 where the group is all zero), or as f16
// that value rounded up onto f16's grid (E_RANGE past 65504), q [N, K] (i8) = round(w / scale)
// clamped to [-127, 127].
void quantize(ThreadPool& pool, const Tensor& q, const Tensor& scales, const Tensor& w, int64_t group);
// v [n] = act(v) in place, by the activation op's kernels (the vector ones where present).
void activate_f32(Activation act, float* v, int64_t n);
// One f32 row v [K] of it: q [K] and scales [K / group] (core/quant.h's formula, AVX2 where present;
// f16: each scale rounded up onto f16's grid, q against it, infinity past f16's range).
void quantize_row(const float* v, int64_t K, int64_t group, int8_t* q, float* scales, bool f16 = false);
// out [N, K] (float dtype) = q * scales, group by group.
void dequantize(ThreadPool& pool, const Tensor& out, const Tensor& q, const Tensor& scales, int64_t group);
// out [..., M, N] = act(x [..., M, K] @ dequant(q [N, K], scales [N, K / group])^T + bias [N]).
// Dequantizes in registers: no f32 copy of the weight is made. x, bias, out share a float dtype.
// quantize_x: a call of at most 8 rows quantizes x per group as the weights are and takes
// integer dot products (MatmulQParams).
void matmul_q(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& q,
              const Tensor& scales, int64_t group, const Tensor* bias, Activation act, bool quantize_x = false);

// out [B, Sq, Hq, D] = softmax(scale * q k^T) v per head, with q [B, Sq, Hq, D] and
// k, v [B, Skv, Hk, D] (Skv >= p.kv_len; only rows [0, kv_len) are read); Hq % Hk == 0 and
// query head h uses kv head h / (Hq / Hk). Causal: query row i sees keys j <= q_pos0 + i
// (a row that sees no key yields zeros). Tiled with an online softmax: memory O(tile), not O(S^2).
void attention(ThreadPool& pool, const Tensor& out, const Tensor& q, const Tensor& k,
               const Tensor& v, const AttentionParams& p);
// Writes k, v [B, S, Hk, D] into rows [position, position + S) of the caches [B, maxSeq, Hk, D].
void kv_append(ThreadPool& pool, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k,
               const Tensor& v, int64_t position);

// The paged KV cache (ops/paged.cc): rows k, v [T, Hk, D] into the pools [NB, BS, Hk, D] at
// slots i32 [T] (< 0: skipped); and out [T, H, D] = each query row of q [T, H, D] attending
// to its sequence's rows [0, position] (the last `window` of them with a window; scores capped by
// softcap) through its block table (tables i32 [S, MB], rows i32
// [T, 2] = sequence, position; sequence -1: zeros). Both throw E_INDEX naming a bad index
// before writing anything.
void kv_write(ThreadPool& pool, const Tensor& pool_k, const Tensor& pool_v, const Tensor& k, const Tensor& v,
              const Tensor& slots);
void paged_attention(ThreadPool& pool, const Tensor& out, const Tensor& q, const Tensor& pool_k, const Tensor& pool_v,
                     const Tensor& tables, const Tensor& rows, const PagedAttentionParams& p);

// out = x / sqrt(mean(x^2 over the last dim) + eps) * weight [D]
void rmsnorm(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& weight, float eps);
// out = (x - mean) / sqrt(var + eps) * weight [D] + bias [D], over the last dim (biased var)
void layernorm(ThreadPool& pool, const Tensor& out, const Tensor& x, const Tensor& weight,
               const Tensor& bias, float eps);
// Elementwise activation (gelu is the tanh form); Activation::none copies.
void activation(ThreadPool& pool, const Tensor& out, const Tensor& x, Activation act);
// softmax along `axis` (0 <= axis < rank), numerically stable (max subtracted).
void softmax(ThreadPool& pool, const Tensor& out, const Tensor& x, int axis);
// out i32 [x.shape[:-1]] = the first index of each last-axis row's maximum, NaN above every
// number (a row with NaN gives its first NaN); x float, its last axis >= 1.
void argmax(ThreadPool& pool, const Tensor& out, const Tensor& x);
// out i32 [rows] = a token drawn from each row of logits [rows, V] (float) as SampleParams says
// (lib/models/sampling.ts's drawToken gives the same token).
void sample(ThreadPool& pool, const Tensor& out, const Tensor& logits, const SampleParams& p);
// Rotary embedding, rotate-half (GPT-NeoX / Llama) form, on x [B, S, H, D] (D even): for
// token s at position p = position + s and i < D/2, with f = freqs[i] if given, else
// theta^(-2i/D), c = scale cos(p f), s = scale sin(p f):
//   out[i] = x[i] c - x[i + D/2] s;  out[i + D/2] = x[i + D/2] c + x[i] s
// positions (i32 [B, S], or null): token (b, s)'s p in place of position + s.
void rope(ThreadPool& pool, const Tensor& out, const Tensor& x, const RopeParams& p, const Tensor* positions = nullptr);
// out [..., D] = table [V, D] [ids [...]]; throws E_INDEX naming the first id outside [0, V).
void embedding(ThreadPool& pool, const Tensor& out, const Tensor& ids, const Tensor& table);
// out = a op b with numpy broadcasting (out's shape is the broadcast shape).
void binary(ThreadPool& pool, const Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op);

// out = table [R, ...] rows [start, start + out rows); out [B, 1, ...] = x [B, S, ...] at S - 1.
void rows(ThreadPool& pool, const Tensor& out, const Tensor& table, int64_t start);
void last(ThreadPool& pool, const Tensor& out, const Tensor& x);

// out = value (any dtype; i8/i32 take the value truncated toward zero).
void fill(ThreadPool& pool, const Tensor& out, double value);
// out (float dtype) = standard normal samples, a pure function of (seed, element index), so the
// result does not depend on the thread count (and the CUDA kernel can match it).
void randn(ThreadPool& pool, const Tensor& out, uint64_t seed);
// out = x converted to out's dtype (float <-> float, or same dtype copy).
void cast(ThreadPool& pool, const Tensor& out, const Tensor& x);

// Bulk conversions between a float dtype (f32, f16, bf16) and f32 on the calling thread.
void convert_to_f32(const void* src, DType src_type, float* dst, size_t n);
void convert_from_f32(const float* src, void* dst, DType dst_type, size_t n);

}  // namespace ignis::cpu
