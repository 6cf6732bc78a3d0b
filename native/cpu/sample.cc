// sample: out [rows] (i32) = a token drawn from each row of logits [rows, V] by softmax(logits /
// temperature), kept to the topK best ids and then to the nucleus, the fewest best ids whose
// probability reaches topP (best: descending logit, ties to the lower id). The draw u in [0, 1)
// is a counter-based hash of (seed, counter, row), so a step's token needs no state from the
// step before and the queue can run steps back to back. The same algorithm, step for step (the
// same heap, the same quickselect, the same order of sums), is lib/models/sampling.ts's, so both
// give the same token for the same logits, seed and counter.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu.h"

namespace ignis::cpu {
namespace {

struct Row {
  const float* l;  // logits [V]
  // a ranks above b: a larger logit, or an equal one and a lower id
  bool better(int32_t a, int32_t b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};

// The k best ids into out[0, k), best first: a min-heap (on rank) of the k best so far.
void top_candidates(const Row& R, int64_t n, int64_t k, int32_t* out) {
  auto worse = [&](int32_t a, int32_t b) { return R.better(b, a); };
  auto down = [&](int64_t i, int64_t size) {
    for (;;) {
      const int64_t l = 2 * i + 1, r = l + 1;
      int64_t worst = i;
      if (l < size && worse(out[l], out[worst])) worst = l;
      if (r < size && worse(out[r], out[worst])) worst = r;
      if (worst == i) return;
      std::swap(out[i], out[worst]);
      i = worst;
    }
  };
  for (int64_t i = 0; i < k; i++) out[i] = int32_t(i);
  for (int64_t i = (k >> 1) - 1; i >= 0; i--) down(i, k);
  for (int64_t i = k; i < n; i++)
    if (worse(out[0], int32_t(i))) {
      out[0] = int32_t(i);
      down(0, k);
    }
  std::sort(out, out + k, [&](int32_t a, int32_t b) { return R.better(a, b); });
}

// The shortest prefix of ids (best first) whose weights reach `mass` (all of them if none does).
int64_t prefix_reaching(const int32_t* ids, int64_t m, const double* w, double mass) {
  double acc = 0;
  for (int64_t i = 0; i < m; i++)
    if ((acc += w[ids[i]]) >= mass) return i + 1;
  return m;
}

// ids[0, c) <- the fewest best of ids[0, m) whose weights reach `mass`; returns c. A quickselect
// that keeps the better side's mass; medians of three as pivots.
int64_t nucleus(const Row& R, int32_t* ids, int64_t m, const double* w, double mass) {
  int64_t lo = 0, hi = m;
  double need = mass;
  while (hi - lo > 16) {
    const int64_t mid = (lo + hi) >> 1;
    const int32_t a = ids[lo], b = ids[mid], c = ids[hi - 1];
    int64_t p;
    if (R.better(a, b) != R.better(a, c)) p = lo;
    else if (R.better(b, a) != R.better(b, c)) p = mid;
    else p = hi - 1;
    const int32_t pivot = ids[p];
    ids[p] = ids[lo];
    ids[lo] = pivot;
    int64_t j = lo + 1;
    double mb = 0;
    for (int64_t i = lo + 1; i < hi; i++) {
      const int32_t id = ids[i];
      if (R.better(id, pivot)) {
        ids[i] = ids[j];
        ids[j++] = id;
        mb += w[id];
      }
    }
    ids[lo] = ids[j - 1];
    ids[j - 1] = pivot;
    if (mb >= need) hi = j - 1;
    else if (mb + w[pivot] >= need) return j;
    else need -= mb + w[pivot], lo = j;
  }
  std::sort(ids + lo, ids + hi, [&](int32_t x, int32_t y) { return R.better(x, y); });
  double acc = 0;
  for (int64_t i = lo; i < hi; i++)
    if ((acc += w[ids[i]]) >= need) return i + 1;
  return hi;
}

// The draw in [0, 1) for (seed, counter, row): a splitmix64 hash (sampling.ts's sampleUniform).
double sample_uniform(uint64_t seed, uint64_t counter, uint64_t row) {
  uint64_t z = seed ^ (counter * 0xD1B54A32D192ED03ULL) ^ (row * 0x8CB92BA72F3D8DD7ULL);
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return double(z >> 11) / 9007199254740992.0;  // 2^53
}

}  // namespace

void sample(ThreadPool& pool, const Tensor& out, const Tensor& logits, const SampleParams& p) {
  const int64_t n = logits.shape.back();
  const int64_t rows = n > 0 ? logits.numel() / n : 0;
  int32_t* o = out.data<int32_t>();
  pool.parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> row32(size_t(logits.dtype == DType::f32 ? 0 : n));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    std::vector<double> w(static_cast<size_t>(n));
    for (int64_t r = r0; r < r1; r++) {
      const float* l;
      if (logits.dtype == DType::f32) {
        l = logits.data<float>() + r * n;
      } else {
        convert_to_f32(static_cast<const char*>(logits.raw()) + size_t(r * n) * dtype_size(logits.dtype), logits.dtype, row32.data(), size_t(n));
        l = row32.data();
      }
      const Row R{l};
      double max = -INFINITY;
      for (int64_t i = 0; i < n; i++)
        if (l[i] > max) max = l[i];
      int64_t m;
      if (p.top_k > 0 && p.top_k < n) {
        m = p.top_k;
        top_candidates(R, n, m, ids.data());
      } else {
        m = n;
        for (int64_t i = 0; i < n; i++) ids[size_t(i)] = int32_t(i);
      }
      double total = 0;
      for (int64_t i = 0; i < m; i++) total += (w[size_t(ids[size_t(i)])] = std::exp((double(l[ids[size_t(i)]]) - max) / p.temperature));
      if (p.top_p < 1) {
        m = m < n ? prefix_reaching(ids.data(), m, w.data(), p.top_p * total) : nucleus(R, ids.data(), m, w.data(), p.top_p * total);
        total = 0;
        for (int64_t i = 0; i < m; i++) total += w[size_t(ids[size_t(i)])];
      }
      double u = sample_uniform(p.seed, p.counter, uint64_t(r)) * total;
      int32_t pick = ids[size_t(m - 1)];
      for (int64_t i = 0; i < m; i++) {
        u -= w[size_t(ids[size_t(i)])];
        if (u < 0) {
          pick = ids[size_t(i)];
          break;
        }
      }
      o[r] = pick;
    }
  });
}

}  // namespace ignis::cpu
