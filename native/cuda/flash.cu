// Attention's tensor-core flash kernel (f16/bf16, D 64, 80, 128): online softmax over K/V tiles
// streamed through shared memory, split-KV when its blocks do not fill the device. The kernel
// and its launch, as they were in attention.cu.
#include "attention.cuh"

namespace ignis::cuda::attn {
namespace {

// ---- flash kernel: f16/bf16, D in {64, 80, 128} ----
// Block: NW warps (1, 4 or 8), warp w owns rows [16 w, 16 w + 16) of the block's 16 * NW rows, with
// Q as mma A fragments in registers and O [16, D] as f32 accumulators. K/V tiles of 64 keys
// stream through two shared-memory stages (cp.async, zero-filled past the block's keys; Q
// borrows stage 1 until it is in registers). Rows are padded to D + 8 elements (an odd number
// of 16-byte chunks), so ldmatrix's 8 row addresses hit distinct banks.

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
    if (n0 + BN <= window_start(a, warp_pos_min)) continue;     // the tile is before every row's window
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
    // soft-capped scores (S here is q.k: its unit is 1 / scale)
    if (a.softcap > 0.f) {
      const float uc = a.softcap * kLog2e / c;
#pragma unroll
      for (int i = 0; i < NT; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[i][e] = capped(s[i][e], uc);
    }
    // S = -inf where key j >= k_end or (causal) j > the row's position, or j before its window
    if (n0 + BN > w.k_end || (a.causal && n0 + BN - 1 > warp_pos_min) || n0 < window_start(a, warp_pos_max)) {
      const int64_t lim_a = a.causal ? min(w.k_end, pos_a + 1) : w.k_end;
      const int64_t lim_b = a.causal ? min(w.k_end, pos_b + 1) : w.k_end;
      const int va = int(clamp64(lim_a - n0, 0, BN));  // keys of the tile row a sees: [fa, va)
      const int vb = int(clamp64(lim_b - n0, 0, BN));
      const int fa = a.window > 0 ? int(clamp64(window_start(a, pos_a) - n0, 0, BN)) : 0;
      const int fb = a.window > 0 ? int(clamp64(window_start(a, pos_b) - n0, 0, BN)) : 0;
#pragma unroll
      for (int i = 0; i < NT; i++) {
        const int j = i * 8 + 2 * tq;
        if (j >= va || j < fa) s[i][0] = -INFINITY;
        if (j + 1 >= va || j + 1 < fa) s[i][1] = -INFINITY;
        if (j >= vb || j < fb) s[i][2] = -INFINITY;
        if (j + 1 >= vb || j + 1 < fb) s[i][3] = -INFINITY;
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

}  // namespace

template <class T>
void attention_flash(const AttnArgs& a, const Launch& L, int64_t keys) {
  if constexpr (sizeof(T) == 2) {
    if (a.D == 64) return attention_flash_cuda<T, 64>(a, L, keys);
    if (a.D == 80) return attention_flash_cuda<T, 80>(a, L, keys);
    if (a.D == 128) return attention_flash_cuda<T, 128>(a, L, keys);
  }
  fail(ErrorCode::Internal, "attention: no flash kernel for head dim " + std::to_string(a.D));
}
template void attention_flash<float>(const AttnArgs&, const Launch&, int64_t);
template void attention_flash<__half>(const AttnArgs&, const Launch&, int64_t);
template void attention_flash<__nv_bfloat16>(const AttnArgs&, const Launch&, int64_t);
}  // namespace ignis::cuda::attn
