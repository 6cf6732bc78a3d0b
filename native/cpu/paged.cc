// The paged KV cache's kernels (ops/paged.cc has the layout). Every index is data, so each op
// checks all of its indices before it writes anything: one out of range fails the op with
// E_INDEX naming it, and leaves its outputs (the pools, for kv_write) untouched.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

void kv_write(ThreadPool& pool, const Tensor& pool_k, const Tensor& pool_v, const Tensor& k, const Tensor& v,
              const Tensor& slots) {
  const int64_t T = k.dim(0), nslots = pool_k.dim(0) * pool_k.dim(1);
  const int32_t* slot = slots.data<int32_t>();
  for (int64_t t = 0; t < T; t++)
    if (slot[t] >= nslots)
      fail(ErrorCode::Index, "kv_write: slot " + std::to_string(slot[t]) + " of row " + std::to_string(t) +
                                 " is outside the pool's " + std::to_string(nslots) + " slots (blocks x blockSize)");
  const size_t row = size_t(k.dim(1) * k.dim(2)) * dtype_size(k.dtype);
  if (T == 0 || row == 0) return;
  char* pk = static_cast<char*>(pool_k.raw());
  char* pv = static_cast<char*>(pool_v.raw());
  const char* sk = static_cast<const char*>(k.raw());
  const char* sv = static_cast<const char*>(v.raw());
  pool.parallel_for(T, std::max<int64_t>(1, int64_t(4 * kElementGrain / row)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      if (slot[t] < 0) continue;  // a padding row
      std::memcpy(pk + size_t(slot[t]) * row, sk + size_t(t) * row, row);
      std::memcpy(pv + size_t(slot[t]) * row, sv + size_t(t) * row, row);
    }
  });
}

namespace {

// One query row's g heads (those sharing kv head kh) against its sequence's keys [0, len):
// scores in f32 per head, their softmax (max subtracted), then the weighted sum of the values.
// Keys [j0, j0 + len) of the sequence (a sliding window starts past 0); softcap > 0 caps each
// score as softcap tanh(s / softcap).
template <class T>
void attend_row(const T* q, const T* pk, const T* pv, const int32_t* blocks, int64_t j0, int64_t len, int64_t BS,
                int64_t Hk, int64_t kh, int64_t g, int64_t D, float scale, float softcap, std::vector<float>& scores,
                std::vector<float>& acc, T* out) {
  scores.assign(size_t(g * len), 0.f);
  acc.assign(size_t(g * D), 0.f);
  std::vector<float> qf(size_t(g * D));
  for (int64_t i = 0; i < g * D; i++) qf[size_t(i)] = to_f32(q[i]);
  auto key_row = [&](const T* base, int64_t j) {
    j += j0;
    return base + ((int64_t(blocks[j / BS]) * BS + j % BS) * Hk + kh) * D;
  };
  for (int64_t j = 0; j < len; j++) {
    const T* kr = key_row(pk, j);
    for (int64_t h = 0; h < g; h++) {
      const float* qh = qf.data() + h * D;
      float s = 0.f;
      for (int64_t d = 0; d < D; d++) s += qh[d] * to_f32(kr[d]);
      s *= scale;
      scores[size_t(h * len + j)] = softcap > 0.f ? softcap * std::tanh(s / softcap) : s;
    }
  }
  for (int64_t h = 0; h < g; h++) {
    float* sh = scores.data() + h * len;
    float m = -INFINITY;
    for (int64_t j = 0; j < len; j++) m = std::max(m, sh[j]);
    float sum = 0.f;
    for (int64_t j = 0; j < len; j++) sum += (sh[j] = std::exp(sh[j] - m));
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < len; j++) sh[j] *= inv;
  }
  for (int64_t j = 0; j < len; j++) {
    const T* vr = key_row(pv, j);
    for (int64_t h = 0; h < g; h++) {
      const float p = scores[size_t(h * len + j)];
      float* a = acc.data() + h * D;
      for (int64_t d = 0; d < D; d++) a[d] += p * to_f32(vr[d]);
    }
  }
  for (int64_t i = 0; i < g * D; i++) out[i] = from_f32<T>(acc[size_t(i)]);
}

}  // namespace

void paged_attention(ThreadPool& pool, const Tensor& out, const Tensor& q, const Tensor& pool_k, const Tensor& pool_v,
                     const Tensor& tables, const Tensor& rows, const PagedAttentionParams& p) {
  float scale = p.scale;
  const int64_t T = q.dim(0), H = q.dim(1), D = q.dim(2);
  const int64_t NB = pool_k.dim(0), BS = pool_k.dim(1), Hk = pool_k.dim(2);
  const int64_t S = tables.dim(0), MB = tables.dim(1);
  const int32_t* tab = tables.data<int32_t>();
  const int32_t* rw = rows.data<int32_t>();
  // every index first: sequences, positions, and the blocks each row reads
  for (int64_t t = 0; t < T; t++) {
    const int64_t s = rw[2 * t], pos = rw[2 * t + 1];
    const std::string row = "paged_attention: row " + std::to_string(t);
    if (s < -1 || s >= S)
      fail(ErrorCode::Index, row + "'s sequence " + std::to_string(s) + " is outside the " + std::to_string(S) +
                                 " block tables (-1: a padding row)");
    if (s < 0) continue;
    if (pos < 0 || pos >= MB * BS)
      fail(ErrorCode::Index, row + "'s position " + std::to_string(pos) + " is outside [0, " + std::to_string(MB * BS) +
                                 "): its block table holds " + std::to_string(MB) + " blocks of " + std::to_string(BS));
    for (int64_t b = 0; b <= pos / BS; b++) {
      const int32_t blk = tab[s * MB + b];
      if (blk < 0 || blk >= NB)
        fail(ErrorCode::Index, row + " (sequence " + std::to_string(s) + ", position " + std::to_string(pos) +
                                   ") reads block " + std::to_string(blk) + " (its table's entry " + std::to_string(b) +
                                   "), outside the pool's " + std::to_string(NB) + " blocks");
    }
  }
  if (out.numel() == 0) return;
  if (!(scale > 0.f)) scale = 1.f / std::sqrt(float(D));
  const int64_t g = H / Hk;
  dispatch_float(q.dtype, [&](auto tag) {
    using T_ = decltype(tag);
    const T_* qp = q.data<T_>();
    const T_* pk = pool_k.data<T_>();
    const T_* pv = pool_v.data<T_>();
    T_* o = out.data<T_>();
    // work items (row, kv head)
    pool.parallel_for(T * Hk, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> scores, acc;
      for (int64_t i = i0; i < i1; i++) {
        const int64_t t = i / Hk, kh = i % Hk, s = rw[2 * t];
        const int64_t off = (t * H + kh * g) * D;
        if (s < 0) {  // a padding row: zeros
          for (int64_t e = 0; e < g * D; e++) o[off + e] = from_f32<T_>(0.f);
          continue;
        }
        const int64_t pos = rw[2 * t + 1], j0 = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
        attend_row(qp + off, pk, pv, tab + s * MB, j0, pos + 1 - j0, BS, Hk, kh, g, D, scale, p.softcap, scores, acc, o + off);
      }
    });
  });
}

}  // namespace ignis::cpu
