// The paged KV cache on CUDA (cpu/paged.cc semantics; ops/paged.cc has the layout).
// kv_write: a check kernel finds the first slot past the pool (recorded in the task's Fault, and
// in a device flag), then the copy kernel writes nothing if it found one, so a bad slot leaves the
// pools unwritten as on the CPU. paged_attention: a block per (query row, head), its warps taking
// the sequence's positions in turn with an online softmax each, combined at the end; a row's
// sequence, position and blocks are checked by the block itself (a bad one: a Fault, zeros).
#include "common.cuh"

namespace ignis::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxPerLane = 8;  // headDim <= 256

// One block: the first row t with slots[t] >= nslots; the Fault and *bad when there is one.
__global__ void kv_write_check(const int32_t* slots, int64_t T, int64_t nslots, Fault* fault, int* bad) {
  int64_t first = T;
  for (int64_t t = threadIdx.x; t < T; t += kThreads)
    if (slots[t] >= nslots && t < first) first = t;
  first = block_min<kThreads>(first);
  if (threadIdx.x == 0) {
    *bad = first < T;
    if (first < T && fault) report_fault(fault, ErrorCode::Index, FaultOp::kv_write, slots[first], first, nslots);
  }
}

// Element e of row t (row = Hk * D elements) of k and v to slot slots[t], unless the check failed.
template <class T>
__global__ void kv_write_copy(T* pk, T* pv, const T* k, const T* v, const int32_t* slots, int64_t T_, int64_t row,
                              const int* bad) {
  if (*bad) return;
  const int64_t n = T_ * row;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / row, e = i - t * row;
    const int32_t slot = slots[t];
    if (slot < 0) continue;  // a padding row
    pk[int64_t(slot) * row + e] = k[i];
    pv[int64_t(slot) * row + e] = v[i];
  }
}

// Block (t, h): out [t, h, :] = q [t, h, :] attending to rows [0, pos] of its sequence s.
template <class T>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(T* out, const T* q, const T* pk, const T* pv,
                                                                   const int32_t* tables, const int32_t* rows,
                                                                   int64_t H, int64_t Hk, int64_t D, int64_t BS,
                                                                   int64_t MB, int64_t S, int64_t NB, float scale,
                                                                   int64_t window, float softcap, Fault* fault) {
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T* o = out + (t * H + h) * D;
  const int64_t s = rows[2 * t], pos = rows[2 * t + 1];
  __shared__ int ok;
  if (threadIdx.x == 0) {
    ok = 1;
    if (s < -1 || s >= S) {
      if (fault) report_fault(fault, ErrorCode::Index, FaultOp::paged_sequence, s, t, S);
      ok = 0;
    } else if (s >= 0 && (pos < 0 || pos >= MB * BS)) {
      if (fault) report_fault(fault, ErrorCode::Index, FaultOp::paged_position, pos, t, MB * BS);
      ok = 0;
    } else if (s >= 0) {
      for (int64_t b = 0; b <= pos / BS; b++) {
        const int32_t blk = tables[s * MB + b];
        if (blk < 0 || blk >= NB) {
          if (fault) report_fault(fault, ErrorCode::Index, FaultOp::paged_block, blk, t, NB);
          ok = 0;
          break;
        }
      }
    }
    if (s < 0) ok = 0;  // a padding row: zeros
  }
  __syncthreads();
  if (!ok) {
    for (int64_t d = threadIdx.x; d < D; d += kThreads) o[d] = from_f32<T>(0.f);
    return;
  }
  const int64_t kh = h / (H / Hk);
  float qv[kMaxPerLane], acc[kMaxPerLane];
  const T* qr = q + (t * H + h) * D;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; i++) {
    const int64_t d = lane + 32 * i;
    qv[i] = d < D ? to_f32(qr[d]) * scale : 0.f;  // scale before the cap: s = scale q.k
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int32_t* table = tables + s * MB;
  const int64_t j0 = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
  for (int64_t j = j0 + warp; j <= pos; j += kWarps) {
    const int64_t row = (int64_t(table[j / BS]) * BS + j % BS) * Hk + kh;
    const T* kr = pk + row * D;
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; i++) {
      const int64_t d = lane + 32 * i;
      if (d < D) dot += qv[i] * to_f32(kr[d]);
    }
    dot = warp_sum(dot);
    if (softcap > 0.f) dot = softcap * tanhf(dot / softcap);
    const float mn = fmaxf(m, dot), corr = __expf(m - mn), p = __expf(dot - mn);
    l = l * corr + p;
    const T* vr = pv + row * D;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; i++) {
      const int64_t d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < D ? p * to_f32(vr[d]) : 0.f);
    }
    m = mn;
  }
  // the warps' (m, l, acc) combined
  __shared__ float wm[kWarps], wl[kWarps];
  __shared__ float wacc[kWarps][kMaxPerLane * 32];
  if (lane == 0) wm[warp] = m, wl[warp] = l;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; i++) wacc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; w++) M = fmaxf(M, wm[w]);
  float L = 0.f;
  for (int w = 0; w < kWarps; w++) L += wm[w] == -INFINITY ? 0.f : wl[w] * __expf(wm[w] - M);
  for (int64_t d = threadIdx.x; d < D; d += kThreads) {
    float a = 0.f;
    for (int w = 0; w < kWarps; w++)
      if (wm[w] != -INFINITY) a += wacc[w][d] * __expf(wm[w] - M);
    o[d] = from_f32<T>(a / L);
  }
}

}  // namespace

void kv_write(const Launch& L, const Tensor& pool_k, const Tensor& pool_v, const Tensor& k, const Tensor& v,
              const Tensor& slots) {
  const int64_t T = k.dim(0), row = k.dim(1) * k.dim(2), nslots = pool_k.dim(0) * pool_k.dim(1);
  if (T == 0) return;
  int* bad = static_cast<int*>(L.scratch(sizeof(int)));
  kv_write_check<<<1, kThreads, 0, stream_of(L)>>>(slots.data<int32_t>(), T, nslots, L.fault_record(), bad);
  check_launch("kv_write_check");
  if (row == 0) return;
  dispatch_float(k.dtype, "kv_write", [&](auto tag) {
    using T_ = decltype(tag);
    const int64_t blocks = std::min<int64_t>(ceil_div<int64_t>(T * row, 256), int64_t(L.sm_count > 0 ? L.sm_count : 132) * 8);
    kv_write_copy<T_><<<unsigned(blocks), 256, 0, stream_of(L)>>>(pool_k.data<T_>(), pool_v.data<T_>(), k.data<T_>(),
                                                                  v.data<T_>(), slots.data<int32_t>(), T, row, bad);
    check_launch("kv_write_copy");
  });
}

void paged_attention(const Launch& L, const Tensor& out, const Tensor& q, const Tensor& pool_k, const Tensor& pool_v,
                     const Tensor& tables, const Tensor& rows, const PagedAttentionParams& p) {
  float scale = p.scale;
  const int64_t T = q.dim(0), H = q.dim(1), D = q.dim(2);
  if (T == 0 || H == 0) return;
  if (D > 32 * kMaxPerLane) fail(ErrorCode::Shape, "paged_attention: headDim " + std::to_string(D) + " is past the CUDA kernel's 256");
  if (!(scale > 0.f)) scale = 1.f / std::sqrt(float(D));
  if (T > 2147483647 || H > 65535) fail(ErrorCode::Shape, "paged_attention: too many rows or heads for one launch");
  dispatch_float(q.dtype, "paged_attention", [&](auto tag) {
    using T_ = decltype(tag);
    const dim3 grid{unsigned(T), unsigned(H)};
    paged_attention_kernel<T_><<<grid, kThreads, 0, stream_of(L)>>>(
        out.data<T_>(), q.data<T_>(), pool_k.data<T_>(), pool_v.data<T_>(), tables.data<int32_t>(), rows.data<int32_t>(),
        H, pool_k.dim(2), D, pool_k.dim(1), tables.dim(1), tables.dim(0), pool_k.dim(0), scale, p.window, p.softcap,
        L.fault_record());
    check_launch("paged_attention_kernel");
  });
}

}  // namespace ignis::cuda
