// Attention's split-KV decode kernel: few rows per kv head, each K/V byte of a split read once
// for all of them. The kernel and its launch, as they were in attention.cu.
#include "attention.cuh"

namespace ignis::cuda::attn {
namespace {

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
  // Keys a row sees, relative to k_begin: [first[rr], lim[rr])
  const int span = int(w.k_end - w.k_begin);
  int lim[RT], first[RT];
#pragma unroll
  for (int rr = 0; rr < RT; rr++) {
    const int64_t pos = w.q_pos0 + (r0 + rr) / a.G;
    lim[rr] = a.causal ? int(clamp64(pos + 1 - w.k_begin, 0, span)) : span;
    first[rr] = a.window > 0 ? int(clamp64(window_start(a, pos) - w.k_begin, 0, span)) : 0;
  }
  const float uc = a.softcap * kLog2e;  // S here is scale_log2 q.k: its unit is log2(e)

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
        const int j = j0 + u * NG + grp;
        if (a.softcap > 0.f) s[rr][u] = capped(s[rr][u], uc);
        if (j >= lim[rr] || j < first[rr]) s[rr][u] = -INFINITY;
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

}  // namespace

template <class T>
void attention_decode(const AttnArgs& a, const Launch& L, int64_t keys, int rt) {
  if (rt == 1) return attention_decode_cuda<T, 1>(a, L, keys);
  if (rt == 2) return attention_decode_cuda<T, 2>(a, L, keys);
  if (rt == 4) return attention_decode_cuda<T, 4>(a, L, keys);
  attention_decode_cuda<T, 8>(a, L, keys);
}
template void attention_decode<float>(const AttnArgs&, const Launch&, int64_t, int);
template void attention_decode<__half>(const AttnArgs&, const Launch&, int64_t, int);
template void attention_decode<__nv_bfloat16>(const AttnArgs&, const Launch&, int64_t, int);
}  // namespace ignis::cuda::attn
