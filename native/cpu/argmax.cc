// argmax along the last axis: out [rows] (i32) = the index of each row's largest element, the
// first on ties; NaN is above every number (numpy's and torch's rule), so a row holding NaN
// gives its first NaN. Many rows run in parallel one per task; a few long rows (a decode step's
// logits over a vocabulary) are split into one chunk per thread, combined in order.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu.h"
#include "simd.h"

namespace ignis::cpu {
namespace {

using Best = std::pair<int64_t, float>;  // (index, value)

// The first maximum of x [i0, i1) (i0 < i1); NaN wins.
template <class T>
Best scan_scalar(const T* x, int64_t i0, int64_t i1) {
  Best b{i0, to_f32(x[i0])};
  if (std::isnan(b.second)) return b;
  for (int64_t i = i0 + 1; i < i1; i++) {
    const float v = to_f32(x[i]);
    if (std::isnan(v)) return {i, v};
    if (v > b.second) b = {i, v};
  }
  return b;
}

#if IGNIS_X86
// f32: one pass for the maximum (and whether a NaN is present), then one for its first index;
// the second pass reads the chunk back from L1/L2.
IGNIS_AVX2 Best scan_avx2(const float* x, int64_t i0, int64_t i1) {
  __m256 m = _mm256_set1_ps(-INFINITY), unordered = _mm256_setzero_ps();
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    m = _mm256_max_ps(m, v);
    unordered = _mm256_or_ps(unordered, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (_mm256_movemask_ps(unordered)) return scan_scalar(x, i0, i1);  // the first NaN
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float best = lanes[0];
  for (int k = 1; k < 8; k++) best = std::max(best, lanes[k]);
  for (int64_t j = i; j < i1; j++) {
    if (std::isnan(x[j])) return scan_scalar(x, i0, i1);
    best = std::max(best, x[j]);
  }
  const __m256 want = _mm256_set1_ps(best);
  for (i = i0; i + 8 <= i1; i += 8) {
    const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), want, _CMP_EQ_OQ));
    if (hit) return {i + __builtin_ctz(unsigned(hit)), best};
  }
  for (; i < i1; i++)
    if (x[i] == best) return {i, best};
  return {i0, best};  // unreachable: best is one of the elements
}
#endif

template <class T>
Best scan(const T* x, int64_t i0, int64_t i1) {
#if IGNIS_X86
  if constexpr (std::is_same_v<T, float>)
    if (has_avx2()) return scan_avx2(x, i0, i1);
#endif
  return scan_scalar(x, i0, i1);
}

// Elements a chunk of a split row holds at least.
constexpr int64_t kChunk = 16384;

}  // namespace

void argmax(ThreadPool& pool, const Tensor& out, const Tensor& x) {
  const int64_t n = x.shape.back();
  const int64_t rows = n > 0 ? x.numel() / n : 0;
  if (rows == 0) return;
  const int64_t threads = pool.size();
  // chunks per row: 1 when there are rows enough for every thread
  const int64_t per_row = rows >= threads ? 1 : std::clamp<int64_t>(n / kChunk, 1, threads);
  std::vector<Best> part(size_t(rows * per_row));
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const int64_t len = n / per_row;  // elements per chunk (the last takes the rest)
    pool.parallel_for(rows * per_row, std::max<int64_t>(1, kChunk / std::max<int64_t>(len, 1)), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) {
        const int64_t r = t / per_row, c = t % per_row;
        const int64_t i0 = c * len, i1 = c + 1 == per_row ? n : i0 + len;
        part[size_t(t)] = scan(xp + r * n, i0, i1);
      }
    });
  });
  int32_t* o = out.data<int32_t>();
  for (int64_t r = 0; r < rows; r++) {
    Best b = part[size_t(r * per_row)];
    for (int64_t c = 1; c < per_row && !std::isnan(b.second); c++) {
      const Best& p = part[size_t(r * per_row + c)];
      if (std::isnan(p.second) || p.second > b.second) b = p;
    }
    o[r] = int32_t(b.first);
  }
}

}  // namespace ignis::cpu
