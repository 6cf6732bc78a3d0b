// softmax along any axis, with x viewed as [outer, n, inner] (n = the axis): a row is n
// elements at stride inner. inner == 1 (the last axis) runs contiguous rows; otherwise blocks
// of up to 256 adjacent columns are reduced together, walking down the axis row by row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

// ---- contiguous rows: x [rows, n] ----

// GCC 12 for aarch64 fails with an internal compiler error (vect_transform_reduction) when it
// vectorizes this fmax reduction over bf16 loads, so there the loop stays scalar, in a function
// of its own so that the rest of the row keeps its vector code.
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__)
#define IGNIS_NO_LOOP_VECTORIZE __attribute__((noinline, optimize("no-tree-loop-vectorize")))
#else
#define IGNIS_NO_LOOP_VECTORIZE
#endif

// max(x [n]), NaN ignored as fmax does.
template <class T>
IGNIS_NO_LOOP_VECTORIZE static float row_max(const T* x, int64_t n) {
  float m = to_f32(x[0]);
  for (int64_t i = 1; i < n; i++) m = std::fmax(m, to_f32(x[i]));
  return m;
}

template <class T>
static void softmax_rows_scalar(T* out, const T* x, int64_t n, int64_t r0, int64_t r1, float* e) {
  for (int64_t r = r0; r < r1; r++) {
    const T* xr = x + r * n;
    T* o = out + r * n;
    const float m = row_max(xr, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
      e[i] = std::exp(to_f32(xr[i]) - m);
      s += e[i];
    }
    const float inv = float(1.0 / s);
    for (int64_t i = 0; i < n; i++) o[i] = from_f32<T>(e[i] * inv);
  }
}

#if IGNIS_X86
// e [n]: f32 scratch for e^(x - max) (out itself when T is float).
template <class T>
IGNIS_AVX2 static void softmax_rows_avx2(T* out, const T* x, int64_t n, int64_t r0, int64_t r1,
                                         float* scratch) {
  for (int64_t r = r0; r < r1; r++) {
    const T* xr = x + r * n;
    T* o = out + r * n;
    float* e = std::is_same<T, float>::value ? reinterpret_cast<float*>(o) : scratch;
    const int64_t nv = n / 8 * 8;

    __m256 vm = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t i = 0; i < nv; i += 8) vm = _mm256_max_ps(vm, load8(xr + i));
    float m = hmax8(vm);
    for (int64_t i = nv; i < n; i++) m = std::fmax(m, to_f32(xr[i]));

    vm = _mm256_set1_ps(m);
    __m256 vs = _mm256_setzero_ps();
    for (int64_t i = 0; i < nv; i += 8) {
      __m256 v = exp8(_mm256_sub_ps(load8(xr + i), vm));
      _mm256_storeu_ps(e + i, v);
      vs = _mm256_add_ps(vs, v);
    }
    float s = hsum8(vs);
    if (nv < n) {
      // The tail through the same exp, padded with -inf (e^-inf = 0).
      float buf[8];
      for (int64_t i = 0; i < 8; i++)
        buf[i] = nv + i < n ? to_f32(xr[nv + i]) : -std::numeric_limits<float>::infinity();
      __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf), vm));
      _mm256_storeu_ps(buf, v);
      for (int64_t i = nv; i < n; i++) {
        e[i] = buf[i - nv];
        s += e[i];
      }
    }

    const float inv = 1.f / s;
    const __m256 vinv = _mm256_set1_ps(inv);
    for (int64_t i = 0; i < nv; i += 8) store8(o + i, _mm256_mul_ps(_mm256_loadu_ps(e + i), vinv));
    for (int64_t i = nv; i < n; i++) o[i] = from_f32<T>(e[i] * inv);
  }
}
#endif

// ---- strided rows: x [outer, n, inner], columns [c0, c0 + w) of one outer slice ----
// Three passes down the axis (max, sum of exps, write), each reading the w columns of row j
// as one contiguous run, with per-column state m, s [w]. Exps are recomputed in the last pass
// rather than stored, so no n x w scratch is needed.

constexpr int64_t kColumnBlock = 256;  // columns per task: 1 KB runs of f32 per row

template <class T>
static void softmax_cols_scalar(T* out, const T* x, int64_t n, int64_t inner, int64_t w) {
  float m[kColumnBlock];
  double s[kColumnBlock];
  for (int64_t c = 0; c < w; c++) m[c] = to_f32(x[c]), s[c] = 0;
  for (int64_t j = 1; j < n; j++)
    for (int64_t c = 0; c < w; c++) m[c] = std::fmax(m[c], to_f32(x[j * inner + c]));
  for (int64_t j = 0; j < n; j++)
    for (int64_t c = 0; c < w; c++) s[c] += std::exp(to_f32(x[j * inner + c]) - m[c]);
  for (int64_t c = 0; c < w; c++) s[c] = 1.0 / s[c];
  for (int64_t j = 0; j < n; j++)
    for (int64_t c = 0; c < w; c++)
      out[j * inner + c] = from_f32<T>(std::exp(to_f32(x[j * inner + c]) - m[c]) * float(s[c]));
}

#if IGNIS_X86
// Columns past the last multiple of 8 take the scalar exp; a column always uses one exp.
template <class T>
IGNIS_AVX2 static void softmax_cols_avx2(T* out, const T* x, int64_t n, int64_t inner, int64_t w) {
  alignas(32) float m[kColumnBlock], s[kColumnBlock];
  const int64_t wv = w / 8 * 8;
  for (int64_t c = 0; c < w; c++) m[c] = to_f32(x[c]), s[c] = 0;
  for (int64_t j = 1; j < n; j++) {
    const T* xr = x + j * inner;
    int64_t c = 0;
    for (; c < wv; c += 8)
      _mm256_store_ps(m + c, _mm256_max_ps(_mm256_load_ps(m + c), load8(xr + c)));
    for (; c < w; c++) m[c] = std::fmax(m[c], to_f32(xr[c]));
  }
  for (int64_t j = 0; j < n; j++) {
    const T* xr = x + j * inner;
    int64_t c = 0;
    for (; c < wv; c += 8) {
      __m256 e = exp8(_mm256_sub_ps(load8(xr + c), _mm256_load_ps(m + c)));
      _mm256_store_ps(s + c, _mm256_add_ps(_mm256_load_ps(s + c), e));
    }
    for (; c < w; c++) s[c] += std::exp(to_f32(xr[c]) - m[c]);
  }
  for (int64_t c = 0; c < w; c++) s[c] = 1.f / s[c];
  for (int64_t j = 0; j < n; j++) {
    const T* xr = x + j * inner;
    T* o = out + j * inner;
    int64_t c = 0;
    for (; c < wv; c += 8) {
      __m256 e = exp8(_mm256_sub_ps(load8(xr + c), _mm256_load_ps(m + c)));
      store8(o + c, _mm256_mul_ps(e, _mm256_load_ps(s + c)));
    }
    for (; c < w; c++) o[c] = from_f32<T>(std::exp(to_f32(xr[c]) - m[c]) * s[c]);
  }
}
#endif

void softmax(ThreadPool& pool, const Tensor& out, const Tensor& x, int axis) {
  if (x.numel() == 0) return;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= x.shape[size_t(i)];
  for (int i = axis + 1; i < x.rank(); i++) inner *= x.shape[size_t(i)];
  const int64_t n = x.shape[size_t(axis)];
  [[maybe_unused]] const bool simd = has_avx2();

  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* xp = x.data<T>();
    if (inner == 1) {
      const int64_t grain = std::max<int64_t>(1, kMathGrain / n);
      pool.parallel_for(outer, grain, [&](int64_t r0, int64_t r1) {
        std::vector<float> scratch(std::is_same<T, float>::value && simd ? 0 : size_t(n));  // [n]
#if IGNIS_X86
        if (simd) return softmax_rows_avx2(o, xp, n, r0, r1, scratch.data());
#endif
        softmax_rows_scalar(o, xp, n, r0, r1, scratch.data());
      });
      return;
    }
    // Tasks: (outer slice, block of up to kColumnBlock columns).
    const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
    const int64_t grain = std::max<int64_t>(1, kMathGrain / (std::min(inner, kColumnBlock) * n));
    pool.parallel_for(outer * blocks, grain, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) {
        const int64_t c0 = (t % blocks) * kColumnBlock;
        const int64_t base = (t / blocks) * n * inner + c0, w = std::min(kColumnBlock, inner - c0);
#if IGNIS_X86
        if (simd) {
          softmax_cols_avx2(o + base, xp + base, n, inner, w);
          continue;
        }
#endif
        softmax_cols_scalar(o + base, xp + base, n, inner, w);
      }
    });
  });
}

}  // namespace ignis::cpu
