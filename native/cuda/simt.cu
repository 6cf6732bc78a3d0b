// Attention's SIMT tiled kernel: any float type and head dim, Q and O in shared memory. The
// kernel and its launch, as they were in attention.cu.
#include "attention.cuh"

namespace ignis::cuda::attn {
namespace {

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
  int64_t lim[RW], first[RW];  // keys row rl = warp + 4 k sees: [max(k_begin, first[k]), lim[k])
#pragma unroll
  for (int k = 0; k < RW; k++) {
    m[k] = -INFINITY;
    l[k] = 0.f;
    const int64_t pos = w.q_pos0 + (r0 + warp + 4 * k) / a.G;
    lim[k] = a.causal ? min(w.k_end, pos + 1) : w.k_end;
    first[k] = window_start(a, pos);
  }
  const float uc = a.softcap * kLog2e;  // S here is scale_log2 q.k: its unit is log2(e)
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
        const int64_t j = n0 + lane;
        const float sv = j < lim[k] && j >= first[k] ? (a.softcap > 0.f ? capped(s[k], uc) : s[k]) : -INFINITY;
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

}  // namespace

template <class T>
void attention_simt(AttnArgs a, const Launch& L, int64_t keys) {
  attention_simt_cuda<T>(a, L, keys);
}
template void attention_simt<float>(AttnArgs, const Launch&, int64_t);
template void attention_simt<__half>(AttnArgs, const Launch&, int64_t);
template void attention_simt<__nv_bfloat16>(AttnArgs, const Launch&, int64_t);
}  // namespace ignis::cuda::attn
