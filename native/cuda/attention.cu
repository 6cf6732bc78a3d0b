// Attention on CUDA, as cpu::attention: out [B, Sq, Hq, D] = softmax(scale Q K^T) V per query
// head over keys [0, kv_len) of k, v [B, Skv, Hk, D], causal or not, GQA/MQA. Three kernels share
// one row layout and one split-KV partial format: a tensor-core flash kernel (f16/bf16, D 64, 80,
// 128), a split-KV decode kernel for few rows per kv head, and a SIMT tiled kernel for the rest;
// a combine kernel merges the splits. Also kv_append, the KV cache write.
#include <algorithm>
#include <atomic>
#include <climits>
#include <string>
#include <type_traits>

#include "common.cuh"

namespace ignis::cuda {
namespace {

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
  w.k_end = max(w.k_end, w.k_begin);
  return w;
}

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

// ---- flash kernel: f16/bf16, D in {64, 80, 128} ----
// Block: NW warps (1, 4 or 8), warp w owns rows [16 w, 16 w + 16) of the block's 16 * NW rows, with
// Q as mma A fragments in registers and O [16, D] as f32 accumulators. K/V tiles of 64 keys
// stream through two shared-memory stages (cp.async, zero-filled past the block's keys; Q
// borrows stage 1 until it is in registers). Rows are padded to D + 8 elements (an odd number
// of 16-byte chunks), so ldmatrix's 8 row addresses hit distinct banks.

template <int D>
constexpr size_t flash_smem_bytes() {
  return size_t(2) * 2 * kFlashKeys * (D + 8) * 2;  // 2 stages of K and V [64, D + 8] 16-bit
}

template <class T, int D, int NW>
__global__ void __launch_bounds__(NW * 32, 1) attention_flash_kernel(const AttnArgs a) {
  constexpr int BM = 16 * NW, BN = kFlashKeys, LD = D + 8, THREADS = NW * 32;
  constexpr int CH = D / 8;   // 16-byte chunks per row
  constexpr int KS = D / 16;  // k-steps of S = Q K^T
  constexpr int NT = BN / 8;  // n-tiles of S (8 keys each)
  constexpr int ND = D / 8;   // n-tiles of O (8 dims each)
  constexpr int STAGE = 2 * BN * LD;
  static_assert(D % 16 == 0 && BM * LD <= STAGE, "Q must fit in a K/V stage");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);  // stage s: K [BN, LD] at s * STAGE, V after it
  T* q_s = smem + STAGE;                     // [BM, LD], until Q is in registers

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const BlockWork w = block_work(a, BM);
  const int r0 = w.rb * BM;
  const T* q = static_cast<const T*>(a.q);
  const T* kg = static_cast<const T*>(a.k) + kv_base_offset(a, w.b, w.hk);
  const T* vg = static_cast<const T*>(a.v) + kv_base_offset(a, w.b, w.hk);
  const int64_t ldkv = int64_t(a.Hk) * D;

  // Q [BM, D], zero rows past R
  for (int c = tid; c < BM * CH; c += THREADS) {
    const int rl = c / CH, ch = c - rl * CH, r = r0 + rl;
    const bool ok = r < a.R;
    cp_async16(q_s + rl * LD + ch * 8, ok ? q + q_row_offset(a, w.b, w.hk, r) + ch * 8 : q, ok);
  }
  // K, V [BN, D] of keys [n0, n0 + BN) into a stage, zero rows at or past k_end
  auto load_kv = [&](int64_t n0, int stage) {
    T* ks = smem + stage * STAGE;
    T* vs = ks + BN * LD;
    for (int c = tid; c < BN * CH; c += THREADS) {
      const int jj = c / CH, ch = c - jj * CH;
      const int64_t j = n0 + jj;
      const bool ok = j < w.k_end;
      const int64_t off = ok ? j * ldkv + ch * 8 : 0;
      cp_async16(ks + jj * LD + ch * 8, kg + off, ok);
      cp_async16(vs + jj * LD + ch * 8, vg + off, ok);
    }
  };
  const int64_t n_tiles = (w.k_end - w.k_begin + BN - 1) / BN;
  if (n_tiles > 0) load_kv(w.k_begin, 0);
  cp_async_commit();

  // This thread's rows: a = rw + lane / 4, b = a + 8 (mma C layout).
  const int rw = r0 + warp * 16;
  const bool warp_live = rw < a.R;
  const int gq = lane >> 2, tq = lane & 3;
  const int row_a = rw + gq, row_b = row_a + 8;
  const int64_t pos_a = w.q_pos0 + row_a / a.G, pos_b = w.q_pos0 + row_b / a.G;
  const int64_t warp_pos_min = w.q_pos0 + rw / a.G;
  const int64_t warp_pos_max = w.q_pos0 + min(rw + 15, a.R - 1) / a.G;
  const float c = a.scale_log2;

  float o[ND][4];
#pragma unroll
  for (int i = 0; i < ND; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m_a = -INFINITY, m_b = -INFINITY;  // running max of S (unscaled)
  float l_a = 0.f, l_b = 0.f;              // running sum of exp2 (this thread's columns)

  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[KS][4];  // A fragments of Q [16, D]
#pragma unroll
  for (int kk = 0; kk < KS; kk++) ldmatrix_x4(qf[kk], q_s + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
  __syncthreads();  // stage 1 is free for tile 1

  for (int64_t n = 0; n < n_tiles; n++) {
    const int64_t n0 = w.k_begin + n * BN;
    if (n > 0) {
      cp_async_wait_all();
      __syncthreads();  // tile n landed; every warp is done with tile n - 1's stage
    }
    if (n + 1 < n_tiles) load_kv(n0 + BN, int((n + 1) & 1));
    cp_async_commit();
    if (!warp_live || (a.causal && n0 > warp_pos_max)) continue;  // no row of this warp sees the tile
    const T* ks = smem + int(n & 1) * STAGE;
    const T* vs = ks + BN * LD;

    // S [16, BN] = Q K^T
    float s[NT][4];
#pragma unroll
    for (int i = 0; i < NT; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
#pragma unroll
      for (int np = 0; np < NT / 2; np++) {
        uint32_t b[4];
        ldmatrix_x4(b, ks + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        mma_16816<T>(s[2 * np], qf[kk], b[0], b[1]);
        mma_16816<T>(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    }
    // S = -inf where key j >= k_end or (causal) j > the row's position
    if (n0 + BN > w.k_end || (a.causal && n0 + BN - 1 > warp_pos_min)) {
      const int64_t lim_a = a.causal ? min(w.k_end, pos_a + 1) : w.k_end;
      const int64_t lim_b = a.causal ? min(w.k_end, pos_b + 1) : w.k_end;
      const int va = int(clamp64(lim_a - n0, 0, BN));  // keys of the tile row a sees
      const int vb = int(clamp64(lim_b - n0, 0, BN));
#pragma unroll
      for (int i = 0; i < NT; i++) {
        const int j = i * 8 + 2 * tq;
        if (j >= va) s[i][0] = -INFINITY;
        if (j + 1 >= va) s[i][1] = -INFINITY;
        if (j >= vb) s[i][2] = -INFINITY;
        if (j + 1 >= vb) s[i][3] = -INFINITY;
      }
    }
    // m_new = max(m_old, max_j S); alpha = exp(scale (m_old - m_new))
    float mx_a = m_a, mx_b = m_b;
#pragma unroll
    for (int i = 0; i < NT; i++) {
      mx_a = fmaxf(mx_a, fmaxf(s[i][0], s[i][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[i][2], s[i][3]));
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
    const float mu_a = mx_a == -INFINITY ? 0.f : mx_a * c;  // no key seen yet: every P is 0
    const float mu_b = mx_b == -INFINITY ? 0.f : mx_b * c;
    const float alpha_a = fast_exp2(m_a * c - mu_a), alpha_b = fast_exp2(m_b * c - mu_b);
    m_a = mx_a;
    m_b = mx_b;
    // P = exp2(scale_log2 S - scale_log2 m_new); l = l * alpha + sum_j P
    float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
    for (int i = 0; i < NT; i++) {
      s[i][0] = fast_exp2(fmaf(s[i][0], c, -mu_a));
      s[i][1] = fast_exp2(fmaf(s[i][1], c, -mu_a));
      s[i][2] = fast_exp2(fmaf(s[i][2], c, -mu_b));
      s[i][3] = fast_exp2(fmaf(s[i][3], c, -mu_b));
      sum_a += s[i][0] + s[i][1];
      sum_b += s[i][2] + s[i][3];
    }
    l_a = l_a * alpha_a + sum_a;
    l_b = l_b * alpha_b + sum_b;
    // O = O * alpha
#pragma unroll
    for (int i = 0; i < ND; i++) {
      o[i][0] *= alpha_a;
      o[i][1] *= alpha_a;
      o[i][2] *= alpha_b;
      o[i][3] *= alpha_b;
    }
    // O += P V, P as A fragments in the storage type (the C layout of S is the A layout of P)
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t pa[4];
      pa[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < ND / 2; dp++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
        mma_16816<T>(o[2 * dp], pa, b[0], b[1]);
        mma_16816<T>(o[2 * dp + 1], pa, b[2], b[3]);
      }
    }
  }

  // l = sum over the 4 threads of a row
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
  if (!warp_live) return;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int r = h ? row_b : row_a;
    if (r >= a.R) continue;
    const float l = h ? l_b : l_a, m = h ? m_b : m_a;
    if (a.splits == 1) {
      // out = O / l (zeros for a row that saw no key)
      const float inv = l > 0.f ? 1.f / l : 0.f;
      T* dst = static_cast<T*>(a.out) + q_row_offset(a, w.b, w.hk, r) + 2 * tq;
#pragma unroll
      for (int i = 0; i < ND; i++)
        *reinterpret_cast<uint32_t*>(dst + i * 8) = pack2<T>(o[i][2 * h] * inv, o[i][2 * h + 1] * inv);
    } else {
      const int64_t pr = int64_t(w.split) * a.B * a.Hk * a.R + part_row(a, w.b, w.hk, r);
      float* dst = a.part_o + pr * D + 2 * tq;
#pragma unroll
      for (int i = 0; i < ND; i++) *reinterpret_cast<float2*>(dst + i * 8) = make_float2(o[i][2 * h], o[i][2 * h + 1]);
      if (tq == 0) a.part_ml[pr] = make_float2(m * c, l);
    }
  }
}

// ---- decode kernel: few rows per (b, hk), any float type, D a multiple of the 16-byte pack ----
// Block: RT rows of one (b, hk) and the keys of one split. The block's threads form groups of GS
// lanes; a group reads one key row at a time (lane l holds packs l, l + GS, ... of K and V),
// so each K/V byte of the split is read once for all RT rows. Each group keeps its own running
// (m, l, O) per row over keys grp, grp + NG, ...; the block merges the groups at the end.

// fn(u, rr, i, x) for each element x of key u's packs kv[u][0..NP) and each row rr < RT; i is
// x's index among the lane's NP * kPack<T> elements of a row.
template <class T, int RT, int U, int NP, class Fn>
__device__ __forceinline__ void for_each_kv(const Pack16 (&kv)[U][NP], Fn&& fn) {
  constexpr int V = kPack<T>;
#pragma unroll
  for (int u = 0; u < U; u++) {
#pragma unroll
    for (int p = 0; p < NP; p++) {
      float f[V];
      unpack<T>(kv[u][p], f);
#pragma unroll
      for (int rr = 0; rr < RT; rr++)
#pragma unroll
        for (int e = 0; e < V; e++) fn(u, rr, p * V + e, f[e]);
    }
  }
}

template <class T, int RT, int GS, int NP>
__global__ void __launch_bounds__(kDecodeThreads, 1) attention_decode_kernel(const AttnArgs a) {
  constexpr int V = kPack<T>;                  // elements per pack
  constexpr int E = NP * V;                    // elements of a row per lane
  constexpr int NG = kDecodeThreads / GS;      // groups per block
  constexpr int U0 = (RT >= 8 ? 2 : 4) / NP;   // keys per group per step
  constexpr int U = U0 > 0 ? U0 : 1;
  constexpr int STEP = NG * U;                 // keys per block per step
  __shared__ float sm_m[NG][RT], sm_l[NG][RT];
  __shared__ __align__(16) float sm_o[NG][GS * E];

  const int tid = threadIdx.x, grp = tid / GS, gl = tid % GS;
  const BlockWork w = block_work(a, RT);
  const int r0 = w.rb * RT;
  const int D = a.D;
  const T* q = static_cast<const T*>(a.q);
  const T* kg = static_cast<const T*>(a.k) + kv_base_offset(a, w.b, w.hk);
  const T* vg = static_cast<const T*>(a.v) + kv_base_offset(a, w.b, w.hk);
  const int64_t ldkv = int64_t(a.Hk) * D;

  // qf = scale_log2 * Q rows (this lane's elements), zero past R
  float qf[RT][E];
#pragma unroll
  for (int rr = 0; rr < RT; rr++) {
#pragma unroll
    for (int p = 0; p < NP; p++) {
      const int ch = gl + GS * p, r = r0 + rr;
      float f[V];
      if (r < a.R && ch * V < D) {
        unpack<T>(load16(q + q_row_offset(a, w.b, w.hk, r) + ch * V), f);
      } else {
#pragma unroll
        for (int e = 0; e < V; e++) f[e] = 0.f;
      }
#pragma unroll
      for (int e = 0; e < V; e++) qf[rr][p * V + e] = f[e] * a.scale_log2;
    }
  }
  // Keys a row sees, relative to k_begin: [0, lim[rr])
  const int span = int(w.k_end - w.k_begin);
  int lim[RT];
#pragma unroll
  for (int rr = 0; rr < RT; rr++) {
    const int64_t pos = w.q_pos0 + (r0 + rr) / a.G;
    lim[rr] = a.causal ? int(clamp64(pos + 1 - w.k_begin, 0, span)) : span;
  }

  float m[RT], l[RT], o[RT][E];
#pragma unroll
  for (int rr = 0; rr < RT; rr++) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int e = 0; e < E; e++) o[rr][e] = 0.f;
  }

  // K, V packs of keys j0 + u * NG + grp (relative to k_begin), zero past the span
  auto load = [&](int j0, Pack16 (&kp)[U][NP], Pack16 (&vp)[U][NP]) {
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int j = j0 + u * NG + grp;
#pragma unroll
      for (int p = 0; p < NP; p++) {
        const int ch = gl + GS * p;
        if (j < span && ch * V < D) {
          const int64_t off = (w.k_begin + j) * ldkv + ch * V;
          kp[u][p] = load16(kg + off);
          vp[u][p] = load16(vg + off);
        } else {
          kp[u][p] = Pack16{};
          vp[u][p] = Pack16{};
        }
      }
    }
  };
  // One step: keys j0 + u * NG + grp from (kc, vc), with the next step's keys loaded into
  // (kn, vn) meanwhile.
  auto step = [&](int j0, const Pack16 (&kc)[U][NP], const Pack16 (&vc)[U][NP], Pack16 (&kn)[U][NP],
                  Pack16 (&vn)[U][NP]) {
    load(j0 + STEP, kn, vn);
    // S [RT, U] = (scale_log2 Q) K^T, summed over the group's lanes
    float s[RT][U];
#pragma unroll
    for (int rr = 0; rr < RT; rr++)
#pragma unroll
      for (int u = 0; u < U; u++) s[rr][u] = 0.f;
    for_each_kv<T, RT>(kc, [&](int u, int rr, int i, float k) { s[rr][u] = fmaf(qf[rr][i], k, s[rr][u]); });
#pragma unroll
    for (int off = GS / 2; off > 0; off >>= 1)
#pragma unroll
      for (int rr = 0; rr < RT; rr++)
#pragma unroll
        for (int u = 0; u < U; u++) s[rr][u] += __shfl_xor_sync(0xffffffffu, s[rr][u], off);
    // m_new = max(m_old, max_u S); P = exp2(S - m_new); l = l * exp2(m_old - m_new) + sum_u P
#pragma unroll
    for (int rr = 0; rr < RT; rr++) {
      float mx = m[rr];
#pragma unroll
      for (int u = 0; u < U; u++) {
        if (j0 + u * NG + grp >= lim[rr]) s[rr][u] = -INFINITY;
        mx = fmaxf(mx, s[rr][u]);
      }
      const float mu = mx == -INFINITY ? 0.f : mx;  // no key seen yet: every P is 0
      const float alpha = fast_exp2(m[rr] - mu);
      float sum = 0.f;
#pragma unroll
      for (int u = 0; u < U; u++) {
        s[rr][u] = fast_exp2(s[rr][u] - mu);
        sum += s[rr][u];
      }
      l[rr] = l[rr] * alpha + sum;
      m[rr] = mx;
      // O = O * exp2(m_old - m_new)
#pragma unroll
      for (int e = 0; e < E; e++) o[rr][e] *= alpha;
    }
    // O += P V
    for_each_kv<T, RT>(vc, [&](int u, int rr, int i, float v) { o[rr][i] = fmaf(s[rr][u], v, o[rr][i]); });
  };
  Pack16 ka[U][NP], va[U][NP], kb[U][NP], vb[U][NP];  // two buffers, used in turn
  load(0, ka, va);
  for (int j0 = 0; j0 < span; j0 += 2 * STEP) {
    step(j0, ka, va, kb, vb);
    if (j0 + STEP >= span) break;
    step(j0 + STEP, kb, vb, ka, va);
  }

  // Merge the groups: M = max_g m_g; O = sum_g exp2(m_g - M) O_g; L = sum_g exp2(m_g - M) l_g
  if (gl == 0) {
#pragma unroll
    for (int rr = 0; rr < RT; rr++) {
      sm_m[grp][rr] = m[rr];
      sm_l[grp][rr] = l[rr];
    }
  }
  __syncthreads();
  const int64_t nr = int64_t(a.B) * a.Hk * a.R;
#pragma unroll
  for (int rr = 0; rr < RT; rr++) {
    const int r = r0 + rr;
    if (r >= a.R) break;  // the same for the whole block
    float M = -INFINITY;
#pragma unroll
    for (int g = 0; g < NG; g++) M = fmaxf(M, sm_m[g][rr]);
    float L = 0.f;
#pragma unroll
    for (int g = 0; g < NG; g++) {
      const float mg = sm_m[g][rr];
      if (mg != -INFINITY) L += sm_l[g][rr] * fast_exp2(mg - M);
    }
    const float wg = m[rr] == -INFINITY ? 0.f : fast_exp2(m[rr] - M);
#pragma unroll
    for (int p = 0; p < NP; p++) {
      const int ch = gl + GS * p;
      if (ch * V < D) {
#pragma unroll
        for (int e = 0; e < V; e++) sm_o[grp][ch * V + e] = o[rr][p * V + e] * wg;
      }
    }
    __syncthreads();
    // O of row r at dim d: the groups' shares summed
    auto o_sum = [&](int d) {
      float acc = 0.f;
#pragma unroll
      for (int g = 0; g < NG; g++) acc += sm_o[g][d];
      return acc;
    };
    if (a.splits == 1) {
      // out = O / L (zeros for a row that saw no key)
      const float inv = L > 0.f ? 1.f / L : 0.f;
      T* dst = static_cast<T*>(a.out) + q_row_offset(a, w.b, w.hk, r);
      for (int d = tid; d < D; d += kDecodeThreads) dst[d] = from_f32<T>(o_sum(d) * inv);
    } else {
      const int64_t pr = int64_t(w.split) * nr + part_row(a, w.b, w.hk, r);
      for (int d = tid; d < D; d += kDecodeThreads) a.part_o[pr * D + d] = o_sum(d);
      if (tid == 0) a.part_ml[pr] = make_float2(M, L);
    }
    __syncthreads();
  }
}

// ---- SIMT kernel: any float type, any D ----
// Block: 4 warps over BM (<= 32) rows of one (b, hk), row rl on warp rl % 4; K/V tiles of 32
// keys, key j on lane j. Q and the unnormalized O live in shared memory as f32 [BM, D]; K and V
// tiles pass through a [32, 129] f32 buffer 128 head dims at a time.

template <class T>
__global__ void __launch_bounds__(kSimtThreads) attention_simt_kernel(const AttnArgs a, int BM) {
  constexpr int LDT = kSimtChunk + 1;  // odd: lane j's row and lane j + 1's lie in different banks
  constexpr int RW = kSimtRows / 4;    // most rows per warp
  extern __shared__ __align__(16) float smem_f[];
  const int D = a.D;
  float* qs = smem_f;           // [BM, D] scale_log2 * Q
  float* os = qs + BM * D;      // [BM, D] O
  float* ts = os + BM * D;      // [32, LDT] K or V rows, dims [c0, c0 + 128)

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const BlockWork w = block_work(a, BM);
  const int r0 = w.rb * BM;
  const T* q = static_cast<const T*>(a.q);
  const T* kg = static_cast<const T*>(a.k) + kv_base_offset(a, w.b, w.hk);
  const T* vg = static_cast<const T*>(a.v) + kv_base_offset(a, w.b, w.hk);
  const int64_t ldkv = int64_t(a.Hk) * D;

  for (int rl = warp; rl < BM; rl += 4) {
    const int r = r0 + rl;
    const T* src = r < a.R ? q + q_row_offset(a, w.b, w.hk, r) : nullptr;
    for (int d = lane; d < D; d += 32) {
      qs[rl * D + d] = src ? to_f32(src[d]) * a.scale_log2 : 0.f;
      os[rl * D + d] = 0.f;
    }
  }
  float m[RW], l[RW];
  int64_t lim[RW];  // keys row rl = warp + 4 k sees: [k_begin, lim[k])
#pragma unroll
  for (int k = 0; k < RW; k++) {
    m[k] = -INFINITY;
    l[k] = 0.f;
    const int64_t pos = w.q_pos0 + (r0 + warp + 4 * k) / a.G;
    lim[k] = a.causal ? min(w.k_end, pos + 1) : w.k_end;
  }
  // ts [32, dc] = rows [n0, n0 + 32) of src (zeros past nk), dims [c0, c0 + dc)
  auto stage = [&](const T* src, int64_t n0, int nk, int c0, int dc) {
    for (int jj = warp; jj < kSimtKeys; jj += 4) {
      const T* row = src + (n0 + jj) * ldkv + c0;
      for (int dd = lane; dd < dc; dd += 32) ts[jj * LDT + dd] = jj < nk ? to_f32(row[dd]) : 0.f;
    }
  };
  __syncthreads();

  for (int64_t n0 = w.k_begin; n0 < w.k_end; n0 += kSimtKeys) {
    const int nk = int(clamp64(w.k_end - n0, 0, kSimtKeys));
    // S [BM, 32] = (scale_log2 Q) K^T, key n0 + lane on this lane
    float s[RW];
#pragma unroll
    for (int k = 0; k < RW; k++) s[k] = 0.f;
    for (int c0 = 0; c0 < D; c0 += kSimtChunk) {
      const int dc = min(kSimtChunk, D - c0);
      stage(kg, n0, nk, c0, dc);
      __syncthreads();
      for (int dd = 0; dd < dc; dd++) {
        const float kv = ts[lane * LDT + dd];
#pragma unroll
        for (int k = 0; k < RW; k++)
          if (warp + 4 * k < BM) s[k] = fmaf(qs[(warp + 4 * k) * D + c0 + dd], kv, s[k]);
      }
      __syncthreads();
    }
    // m_new = max(m_old, max_j S); P = exp2(S - m_new); l = l * exp2(m_old - m_new) + sum_j P
    float pk[RW], alpha[RW];
#pragma unroll
    for (int k = 0; k < RW; k++) {
      pk[k] = 0.f;
      alpha[k] = 1.f;
      if (warp + 4 * k < BM) {
        const float sv = n0 + lane < lim[k] ? s[k] : -INFINITY;
        const float mx = fmaxf(m[k], warp_max(sv));
        const float mu = mx == -INFINITY ? 0.f : mx;
        pk[k] = fast_exp2(sv - mu);
        alpha[k] = fast_exp2(m[k] - mu);
        l[k] = l[k] * alpha[k] + warp_sum(pk[k]);
        m[k] = mx;
      }
    }
    // O = O * alpha + P V
    for (int c0 = 0; c0 < D; c0 += kSimtChunk) {
      const int dc = min(kSimtChunk, D - c0);
      stage(vg, n0, nk, c0, dc);
      __syncthreads();
#pragma unroll
      for (int k = 0; k < RW; k++) {
        const int rl = warp + 4 * k;
        if (rl >= BM) continue;
        float* orow = os + rl * D + c0;
        float acc[kSimtChunk / 32];
#pragma unroll
        for (int t = 0; t < kSimtChunk / 32; t++) {
          const int dd = lane + 32 * t;
          acc[t] = dd < dc ? orow[dd] * alpha[k] : 0.f;
        }
        for (int jj = 0; jj < nk; jj++) {
          const float pj = __shfl_sync(0xffffffffu, pk[k], jj);
#pragma unroll
          for (int t = 0; t < kSimtChunk / 32; t++) acc[t] = fmaf(pj, ts[jj * LDT + lane + 32 * t], acc[t]);
        }
#pragma unroll
        for (int t = 0; t < kSimtChunk / 32; t++) {
          const int dd = lane + 32 * t;
          if (dd < dc) orow[dd] = acc[t];
        }
      }
      __syncthreads();
    }
  }

  const int64_t nr = int64_t(a.B) * a.Hk * a.R;
#pragma unroll
  for (int k = 0; k < RW; k++) {
    const int rl = warp + 4 * k, r = r0 + rl;
    if (rl >= BM || r >= a.R) continue;
    const float* orow = os + rl * D;
    if (a.splits == 1) {
      // out = O / l (zeros for a row that saw no key)
      const float inv = l[k] > 0.f ? 1.f / l[k] : 0.f;
      T* dst = static_cast<T*>(a.out) + q_row_offset(a, w.b, w.hk, r);
      for (int d = lane; d < D; d += 32) dst[d] = from_f32<T>(orow[d] * inv);
    } else {
      const int64_t pr = int64_t(w.split) * nr + part_row(a, w.b, w.hk, r);
      for (int d = lane; d < D; d += 32) a.part_o[pr * D + d] = orow[d];
      if (lane == 0) a.part_ml[pr] = make_float2(m[k], l[k]);
    }
  }
}

// ---- combine: the splits of a row ----
// One warp per row of the B * Hk * R rows:
// out = sum_s exp2(m_s - M) O_s / sum_s exp2(m_s - M) l_s, M = max_s m_s. Splits that saw no key
// (m_s = -inf) weigh 0 and their O_s is not read.

template <class T>
__global__ void __launch_bounds__(kCombineWarps * 32) attention_combine_kernel(const AttnArgs a) {
  __shared__ float ws[kCombineWarps][kMaxSplits];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t nr = int64_t(a.B) * a.Hk * a.R;
  const int64_t pr = int64_t(blockIdx.x) * kCombineWarps + warp;
  if (pr >= nr) return;
  float M = -INFINITY;
  for (int s = lane; s < a.splits; s += 32) M = fmaxf(M, a.part_ml[s * nr + pr].x);
  M = warp_max(M);
  float L = 0.f;
  for (int s = lane; s < a.splits; s += 32) {
    const float2 ml = a.part_ml[s * nr + pr];
    const float wgt = ml.x == -INFINITY ? 0.f : fast_exp2(ml.x - M);
    ws[warp][s] = wgt;
    L += wgt * ml.y;
  }
  L = warp_sum(L);
  __syncwarp();
  const float inv = L > 0.f ? 1.f / L : 0.f;
  const int r = int(pr % a.R);
  const int64_t bh = pr / a.R;
  T* dst = static_cast<T*>(a.out) + q_row_offset(a, int(bh / a.Hk), int(bh % a.Hk), r);
  for (int d = lane; d < a.D; d += 32) {
    float acc = 0.f;
    for (int s = 0; s < a.splits; s++) {
      const float wgt = ws[warp][s];
      if (wgt != 0.f) acc = fmaf(wgt, a.part_o[(s * nr + pr) * a.D + d], acc);
    }
    dst[d] = from_f32<T>(acc * inv);
  }
}

// ---- launchers ----

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
void choose_splits(AttnArgs& a, int64_t blocks, int64_t keys, int64_t target, int64_t min_keys) {
  int64_t splits = 1;
  if (blocks < target && keys > min_keys) {
    splits = std::min<int64_t>(ceil_div(target, blocks), ceil_div(keys, min_keys));
    splits = std::min<int64_t>(std::max<int64_t>(splits, 1), kMaxSplits);
  }
  int64_t per = ceil_div<int64_t>(std::max<int64_t>(keys, 1), splits);
  per = ceil_div<int64_t>(per, 64) * 64;
  a.split_keys = int(std::min<int64_t>(per, INT_MAX / 2));
  a.splits = int(std::max<int64_t>(1, ceil_div<int64_t>(std::max<int64_t>(keys, 1), a.split_keys)));
}

// Grid of one attention kernel: row_blocks * splits * Hk * B blocks.
dim3 attention_grid(const AttnArgs& a) {
  const int64_t blocks = int64_t(a.row_blocks) * a.splits * a.Hk * a.B;
  if (blocks > INT_MAX) fail(ErrorCode::Argument, "attention: too many rows and heads for one CUDA launch");
  return dim3(unsigned(blocks));
}

// Scratch for the split partials, when there are splits.
void alloc_partials(AttnArgs& a, const Launch& L) {
  if (a.splits == 1) return;
  const size_t rows = size_t(a.splits) * size_t(a.B) * size_t(a.Hk) * size_t(a.R);
  const size_t o_bytes = (rows * size_t(a.D) * sizeof(float) + 255) / 256 * 256;
  char* base = static_cast<char*>(L.scratch(o_bytes + rows * sizeof(float2)));
  a.part_o = reinterpret_cast<float*>(base);
  a.part_ml = reinterpret_cast<float2*>(base + o_bytes);
}

template <class T>
void attention_combine_cuda(const AttnArgs& a, const Launch& L) {
  if (a.splits == 1) return;
  const int64_t nr = int64_t(a.B) * a.Hk * a.R;
  attention_combine_kernel<T><<<unsigned(ceil_div<int64_t>(nr, kCombineWarps)), kCombineWarps * 32, 0,
                                stream_of(L)>>>(a);
  check_launch("attention_combine_kernel");
}

template <class T, int D, int NW>
void attention_flash_launch(AttnArgs a, const Launch& L, int64_t keys) {
  constexpr int BM = 16 * NW;
  auto* kernel = attention_flash_kernel<T, D, NW>;
  static std::atomic<uint64_t> smem_set{0};
  allow_smem(kernel, smem_set, L);
  a.row_blocks = int(ceil_div<int64_t>(a.R, BM));
  const int64_t blocks = int64_t(a.row_blocks) * a.Hk * a.B;
  const int64_t sms = L.sm_count > 0 ? L.sm_count : 132;
  // One warp: 3 blocks an SM (shared memory); more warps: 1 or 2.
  choose_splits(a, blocks, keys, (NW == 1 ? 4 : 2) * sms, NW == 1 ? 128 : 256);
  alloc_partials(a, L);
  kernel<<<attention_grid(a), NW * 32, flash_smem_bytes<D>(), stream_of(L)>>>(a);
  check_launch("attention_flash_kernel");
  attention_combine_cuda<T>(a, L);
}

// 16 rows a warp: one warp for up to 16 rows (decode with GQA: memory-bound, the 16-row tile
// costs nothing), 4 warps up to 64, else 8 (128-row tiles: K/V read from L2 once per 128 rows).
template <class T, int D>
void attention_flash_cuda(const AttnArgs& a, const Launch& L, int64_t keys) {
  if (a.R <= 16) return attention_flash_launch<T, D, 1>(a, L, keys);
  if (a.R <= 64) return attention_flash_launch<T, D, 4>(a, L, keys);
  attention_flash_launch<T, D, 8>(a, L, keys);
}

template <class T, int RT, int GS, int NP>
void attention_decode_launch(AttnArgs a, const Launch& L, int64_t keys) {
  a.row_blocks = int(ceil_div<int64_t>(a.R, RT));
  const int64_t blocks = int64_t(a.row_blocks) * a.Hk * a.B;
  const int64_t sms = L.sm_count > 0 ? L.sm_count : 132;
  choose_splits(a, blocks, keys, 4 * sms, 128);
  alloc_partials(a, L);
  attention_decode_kernel<T, RT, GS, NP><<<attention_grid(a), kDecodeThreads, 0, stream_of(L)>>>(a);
  check_launch("attention_decode_kernel");
  attention_combine_cuda<T>(a, L);
}

// The most packs of a row the decode kernel takes with RT rows a block (registers: Q and O
// are RT x packs-a-lane x pack floats a lane).
constexpr int decode_max_packs(int rt) {
  return rt <= 2 ? 64 : 32;
}

// GS lanes a key, NP packs a lane: the fewest lanes (up to a warp) that cover D / pack packs.
// 8 rows: always a warp a key (rare shapes: f32, or head dims without a flash kernel).
template <class T, int RT>
void attention_decode_cuda(const AttnArgs& a, const Launch& L, int64_t keys) {
  const int packs = a.D / kPack<T>;
  if constexpr (RT >= 8) {
    attention_decode_launch<T, RT, 32, 1>(a, L, keys);
  } else {
    if (packs <= 8) return attention_decode_launch<T, RT, 8, 1>(a, L, keys);
    if (packs <= 16) return attention_decode_launch<T, RT, 16, 1>(a, L, keys);
    if (packs <= 32) return attention_decode_launch<T, RT, 32, 1>(a, L, keys);
    if constexpr (RT <= 2) {
      if (packs <= 64) return attention_decode_launch<T, RT, 32, 2>(a, L, keys);
    }
    fail(ErrorCode::Internal, "attention: no decode kernel for head dim " + std::to_string(a.D));
  }
}

template <class T>
void attention_simt_cuda(AttnArgs a, const Launch& L, int64_t keys) {
  auto smem = [&](int bm) { return (size_t(2) * bm * a.D + size_t(kSimtKeys) * (kSimtChunk + 1)) * sizeof(float); };
  int bm = int(std::min<int64_t>(kSimtRows, a.R));
  while (bm > 1 && smem(bm) > L.smem_optin) bm = (bm + 1) / 2;
  if (smem(bm) > L.smem_optin)
    fail(ErrorCode::Argument, "attention: head dim " + std::to_string(a.D) + " is too large for this CUDA device");
  auto* kernel = attention_simt_kernel<T>;
  static std::atomic<uint64_t> smem_set{0};
  allow_smem(kernel, smem_set, L);
  a.row_blocks = int(ceil_div<int64_t>(a.R, bm));
  const int64_t blocks = int64_t(a.row_blocks) * a.Hk * a.B;
  const int64_t sms = L.sm_count > 0 ? L.sm_count : 132;
  choose_splits(a, blocks, keys, 2 * sms, 256);
  alloc_partials(a, L);
  kernel<<<attention_grid(a), kSimtThreads, smem(bm), stream_of(L)>>>(a, bm);
  check_launch("attention_simt_kernel");
  attention_combine_cuda<T>(a, L);
}

// Which kernel: R (rows a kv head) up to 4, the SIMT split-KV decode kernel; f16/bf16 with D 64,
// 80 or 128, the flash kernel (split-KV too when its blocks do not fill the device); else the
// decode kernel up to 32 rows (blocks of 8 rows, the K/V of a split read by each, mostly from
// L2), and the SIMT tiled kernel beyond.
template <class T>
void attention_cuda(const AttnArgs& a, const Launch& L, int64_t keys) {
  const bool packed = a.D % kPack<T> == 0 && aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
  const int packs = a.D / kPack<T>;
  if (packed && a.R <= 4 && packs <= decode_max_packs(a.R)) {
    if (a.R == 1) return attention_decode_cuda<T, 1>(a, L, keys);
    if (a.R == 2) return attention_decode_cuda<T, 2>(a, L, keys);
    return attention_decode_cuda<T, 4>(a, L, keys);
  }
  if constexpr (sizeof(T) == 2) {
    if (packed && aligned16(a.out) && L.smem_optin >= flash_smem_bytes<128>()) {
      if (a.D == 64) return attention_flash_cuda<T, 64>(a, L, keys);
      if (a.D == 80) return attention_flash_cuda<T, 80>(a, L, keys);
      if (a.D == 128) return attention_flash_cuda<T, 128>(a, L, keys);
    }
  }
  if (packed && a.R <= 32 && packs <= decode_max_packs(8)) return attention_decode_cuda<T, 8>(a, L, keys);
  attention_simt_cuda<T>(a, L, keys);
}

// ---- kv_append ----
// Row (b, s) of k, v [B, S, Hk * D] goes to row (b, pos + s) of the caches [B, maxSeq, Hk * D],
// pos = position (+ *position_dev); rows outside [0, maxSeq) are not written. Moves W-sized
// units: 16-byte packs where the rows allow, smaller otherwise.

template <class W>
__global__ void kv_append_kernel(W* cache_k, W* cache_v, const W* k, const W* v, int64_t rows, int64_t S,
                                 int64_t units, int64_t max_seq, int64_t position, const int64_t* position_dev) {
  const W* src = blockIdx.y ? v : k;
  W* dst = blockIdx.y ? cache_v : cache_k;
  const int64_t pos = position + (position_dev ? *position_dev : 0);
  const int64_t n = rows * units;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / units, u = i - row * units;
    const int64_t b = row / S, t = pos + (row - b * S);
    if (t < 0 || t >= max_seq) continue;
    dst[(b * max_seq + t) * units + u] = src[i];
  }
}

template <class W>
void kv_append_cuda(const Launch& L, void* cache_k, void* cache_v, const void* k, const void* v, int64_t rows,
                    int64_t S, int64_t row_bytes, int64_t max_seq, int64_t position, const int64_t* position_dev) {
  const int64_t units = row_bytes / int64_t(sizeof(W));
  const int64_t n = rows * units;
  const int64_t cap = int64_t(L.sm_count > 0 ? L.sm_count : 132) * 8;
  const dim3 grid(unsigned(std::min(ceil_div<int64_t>(n, 256), cap)), 2);
  kv_append_kernel<W><<<grid, 256, 0, stream_of(L)>>>(static_cast<W*>(cache_k), static_cast<W*>(cache_v),
                                                      static_cast<const W*>(k), static_cast<const W*>(v), rows, S,
                                                      units, max_seq, position, position_dev);
  check_launch("kv_append_kernel");
}

}  // namespace

void attention(const Launch& L, const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
               const AttentionParams& p) {
  if (out.numel() == 0) return;
  for (int i = 0; i < 4; i++)
    if (q.dim(i) > INT_MAX / 2 || k.dim(i) > INT_MAX / 2)
      fail(ErrorCode::Argument, "attention: " + shape_str(q.shape) + " x " + shape_str(k.shape) +
                                    " is too large for the CUDA kernels");
  AttnArgs a{};
  a.q = q.raw();
  a.k = k.raw();
  a.v = v.raw();
  a.out = out.raw();
  a.B = int(q.dim(0));
  a.Sq = int(q.dim(1));
  a.Hq = int(q.dim(2));
  a.D = int(q.dim(3));
  a.Skv = int(k.dim(1));
  a.Hk = int(k.dim(2));
  a.G = a.Hq / a.Hk;
  if (int64_t(a.Sq) * a.G > INT_MAX / 2) fail(ErrorCode::Argument, "attention: too many query rows for the CUDA kernels");
  a.R = a.Sq * a.G;
  a.kv_len = std::min<int64_t>(p.kv_len, a.Skv);
  a.q_pos0 = p.q_pos0;
  a.pos_dev = p.pos_dev;
  a.causal = p.causal;
  a.scale_log2 = p.scale * kLog2e;
  a.splits = 1;
  // With pos_dev the run-time kv_len is unknown here: size for k's full rows.
  const int64_t keys = p.pos_dev ? a.Skv : a.kv_len;
  dispatch_float(q.dtype, "attention", [&](auto tag) { attention_cuda<decltype(tag)>(a, L, keys); });
}

void kv_append(const Launch& L, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k, const Tensor& v,
               int64_t position, const int64_t* position_dev) {
  const int64_t B = k.dim(0), S = k.dim(1), max_seq = cache_k.dim(1);
  const int64_t row_bytes = k.dim(2) * k.dim(3) * int64_t(dtype_size(k.dtype));
  if (B == 0 || S == 0 || row_bytes == 0) return;
  auto fits = [&](int64_t w) {
    return row_bytes % w == 0 && (reinterpret_cast<uintptr_t>(cache_k.raw()) | reinterpret_cast<uintptr_t>(cache_v.raw()) |
                                  reinterpret_cast<uintptr_t>(k.raw()) | reinterpret_cast<uintptr_t>(v.raw())) %
                                         uintptr_t(w) ==
                                     0;
  };
  const auto go = [&](auto w) {
    kv_append_cuda<decltype(w)>(L, cache_k.raw(), cache_v.raw(), k.raw(), v.raw(), B * S, S, row_bytes, max_seq,
                                position, position_dev);
  };
  if (fits(16)) return go(Pack16{});
  if (fits(4)) return go(uint32_t{});
  if (fits(2)) return go(uint16_t{});
  go(uint8_t{});
}

}  // namespace ignis::cuda
