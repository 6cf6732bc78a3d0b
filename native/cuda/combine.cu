// Attention's combine kernel: the split-KV partials of each row merged into out. The kernel and
// its launch, as they were in attention.cu.
#include "attention.cuh"

namespace ignis::cuda::attn {
namespace {

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

}  // namespace

template <class T>
void attention_combine_cuda(const AttnArgs& a, const Launch& L) {
  if (a.splits == 1) return;
  const int64_t nr = int64_t(a.B) * a.Hk * a.R;
  attention_combine_kernel<T><<<unsigned(ceil_div<int64_t>(nr, kCombineWarps)), kCombineWarps * 32, 0,
                                stream_of(L)>>>(a);
  check_launch("attention_combine_kernel");
}

template void attention_combine_cuda<float>(const AttnArgs&, const Launch&);
template void attention_combine_cuda<__half>(const AttnArgs&, const Launch&);
template void attention_combine_cuda<__nv_bfloat16>(const AttnArgs&, const Launch&);

}  // namespace ignis::cuda::attn
