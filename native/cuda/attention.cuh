// What the attention kernels share (attention.cu dispatches, flash.cu, decode.cu, simt.cu and
// combine.cu hold a kernel each): the launch's params struct and row layout, the split-KV
// partial format, the tensor-core primitives, and the launchers' signatures.
#pragma once
#include <algorithm>
#include <atomic>
#include <climits>
#include <string>
#include <type_traits>

#include "common.cuh"

namespace ignis::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMaxSplits = 128;      // key splits of one row (the combine kernel's table)
constexpr int kFlashKeys = 64;       // keys per K/V tile of the flash kernel
constexpr int kDecodeThreads = 128;  // threads per decode block
constexpr int kSimtThreads = 128;    // threads per SIMT block (4 warps)
constexpr int kSimtRows = 32;        // most rows per SIMT block
constexpr int kSimtKeys = 32;        // keys per SIMT tile: one per lane
constexpr int kSimtChunk = 128;      // head dims staged in shared memory at once (SIMT)
constexpr int kCombineWarps = 4;     // rows per combine block

// One attention launch. A block works on rows of one (batch b, kv head hk): row r = i * G + g
// is query i of head hk * G + g (R = Sq * G rows), so the G query heads of a kv head share its
// K/V reads; and on the keys of one split, [split * split_keys, (split + 1) * split_keys).
struct AttnArgs {
  const void* q;           // [B, Sq, Hq, D]
  const void* k;           // [B, Skv, Hk, D]
  const void* v;           // [B, Skv, Hk, D]
  void* out;               // [B, Sq, Hq, D]
  float* part_o;           // [splits, B * Hk * R, D] unnormalized O of each split (splits > 1)
  float2* part_ml;         // [splits, B * Hk * R] (m, l): max of scale_log2 * s, sum of exp2
  const int64_t* pos_dev;  // CUDA graphs: added to kv_len and q_pos0 when the kernel runs
  int64_t kv_len, q_pos0;
  int B, Sq, Hq, Hk, G, D, Skv, R;
  int row_blocks;    // blocks along the R rows of one (b, hk)
  int splits;        // key splits (1: the kernel writes out itself)
  int split_keys;    // keys per split
  float scale_log2;  // scale * log2(e): exp(scale s - scale m) = exp2(scale_log2 (s - m))
  bool causal;
  int64_t window;  // > 0 (causal): the row at position p sees keys (p - window, p]
  float softcap;   // > 0: a score t = scale q.k becomes softcap tanh(t / softcap)
};

// What one block works on: rows [rb * rows, (rb + 1) * rows) of (b, hk), keys [k_begin, k_end).
// Row blocks vary fastest, last (costliest under causal) first, so the blocks of one (b, hk)
// run together and share its K/V in L2.
struct BlockWork {
  int b, hk, rb, split;
  int64_t q_pos0;          // at run time
  int64_t k_begin, k_end;  // k_end: min(kv_len, split end, causal: last row's position + 1)
};

__device__ __forceinline__ BlockWork block_work(const AttnArgs& a, int rows) {
  BlockWork w;
  int64_t bid = blockIdx.x;
  w.rb = a.row_blocks - 1 - int(bid % a.row_blocks);
  bid /= a.row_blocks;
  w.split = int(bid % a.splits);
  bid /= a.splits;
  w.hk = int(bid % a.Hk);
  w.b = int(bid / a.Hk);
  int64_t kv_len = a.kv_len;
  w.q_pos0 = a.q_pos0;
  if (a.pos_dev) {
    const int64_t p = *a.pos_dev;
    kv_len = min(kv_len + p, int64_t(a.Skv));
    w.q_pos0 += p;
  }
  w.k_begin = int64_t(w.split) * a.split_keys;
  w.k_end = min(kv_len, w.k_begin + a.split_keys);
  if (a.causal) {
    const int last = min((w.rb + 1) * rows, a.R) - 1;
    w.k_end = min(w.k_end, w.q_pos0 + last / a.G + 1);
  }
  // a sliding window: keys before the first row's window are seen by no row of the block
  if (a.window > 0) w.k_begin = max(w.k_begin, w.q_pos0 + (w.rb * rows) / a.G - a.window + 1);
  w.k_end = max(w.k_end, w.k_begin);
  return w;
}

// The first key the row at `pos` sees (its window's start), or INT64_MIN without a window.
__device__ __forceinline__ int64_t window_start(const AttnArgs& a, int64_t pos) {
  return a.window > 0 ? pos - a.window + 1 : INT64_MIN;
}
// A score s in units where s / unit is the score t = scale q.k, soft-capped: unit cap tanh(t / cap);
// unit_cap = unit * cap.
__device__ __forceinline__ float capped(float s, float unit_cap) { return unit_cap * tanhf(s / unit_cap); }

// Element offset of row r of (b, hk) in q and out.
__device__ __forceinline__ int64_t q_row_offset(const AttnArgs& a, int b, int hk, int r) {
  const int i = r / a.G, g = r - i * a.G;
  return ((int64_t(b) * a.Sq + i) * a.Hq + int64_t(hk) * a.G + g) * a.D;
}
// Element offset of key row 0 of (b, hk) in k and v; key rows are Hk * D apart.
__device__ __forceinline__ int64_t kv_base_offset(const AttnArgs& a, int b, int hk) {
  return (int64_t(b) * a.Skv * a.Hk + hk) * a.D;
}
// Index of row r of (b, hk) among the B * Hk * R rows of the split partials.
__device__ __forceinline__ int64_t part_row(const AttnArgs& a, int b, int hk, int r) {
  return (int64_t(b) * a.Hk + hk) * a.R + r;
}

__device__ __forceinline__ int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

// 2^x (MUFU.EX2, results below 2^-126 flushed to 0; 2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- tensor-core primitives (sm_80+) ----

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared, asynchronously; zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Four 8x8 16-bit matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i holds
// thread lane's (row lane / 4, columns 2 (lane % 4) + {0, 1}) of matrix i (.trans: transposed).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// C [16, 8] += A [16, 16] B [16, 8], f32 accumulation.
template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// ---- launch helpers (attention.cu) ----

// Lets `kernel` use up to the device's opt-in shared memory per block (once per device).
template <class Kernel>
void allow_smem(Kernel* kernel, std::atomic<uint64_t>& done, const Launch& L) {
  const uint64_t bit = uint64_t(1) << (L.device & 63);
  if (done.load(std::memory_order_relaxed) & bit) return;
  IGNIS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(L.smem_optin)));
  done.fetch_or(bit, std::memory_order_relaxed);
}

// Key splits for `blocks` blocks of (rows, b, hk): enough blocks for `target`, at least
// `min_keys` keys a split, split_keys a multiple of 64. Sized for `keys`.
void choose_splits(AttnArgs& a, int64_t blocks, int64_t keys, int64_t target, int64_t min_keys);
// Grid of one attention kernel: row_blocks * splits * Hk * B blocks.
dim3 attention_grid(const AttnArgs& a);
// Scratch for the split partials, when there are splits.
void alloc_partials(AttnArgs& a, const Launch& L);

// ---- the kernels' launchers, a file each; T is float, __half or __nv_bfloat16 ----

// combine.cu: merges the splits of each row into out (nothing when a.splits == 1).
template <class T> void attention_combine_cuda(const AttnArgs& a, const Launch& L);
// flash.cu: the tensor-core flash kernel, f16/bf16 only, D 64, 80 or 128.
template <int D> constexpr size_t flash_smem_bytes() {
  return size_t(2) * 2 * kFlashKeys * (D + 8) * 2;  // 2 stages of K and V [64, D + 8] 16-bit
}
template <class T> void attention_flash(const AttnArgs& a, const Launch& L, int64_t keys);
// decode.cu: the split-KV decode kernel, RT (1, 2, 4 or 8) rows a block.
// The most packs of a row the decode kernel takes with RT rows a block (registers: Q and O
// are RT x packs-a-lane x pack floats a lane).
constexpr int decode_max_packs(int rt) {
  return rt <= 2 ? 64 : 32;
}
template <class T> void attention_decode(const AttnArgs& a, const Launch& L, int64_t keys, int rt);
// simt.cu: the SIMT tiled kernel, any float type and D.
template <class T> void attention_simt(AttnArgs a, const Launch& L, int64_t keys);

}  // namespace ignis::cuda::attn
