// add and mul with numpy broadcasting. The shapes are reduced to a plan (core/broadcast.h): out's
// dims with size-1 dims dropped and mergeable neighbours coalesced, each with a's and b's element
// strides (0 where broadcast). Out is then walked flat in segments of the innermost dim, where a
// and b each have stride 1 or 0: same shapes become one segment, a [M, N] + b [N] rows of N, a
// scalar a stride 0.
#include <algorithm>
#include <vector>

#include "../core/broadcast.h"
#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

namespace {

template <BinaryOp OP>
inline float apply_op(float a, float b) {
  return OP == BinaryOp::add ? a + b : a * b;
}

// out[i] = a[i * sa] op b[i * sb] for i < n, with sa, sb in {0, 1}.
template <BinaryOp OP, class T>
void segment_scalar(T* o, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    o[i] = from_f32<T>(apply_op<OP>(to_f32(a[i * sa]), to_f32(b[i * sb])));
}

#if IGNIS_X86
template <BinaryOp OP>
inline IGNIS_AVX2 __m256 apply_op8(__m256 a, __m256 b) {
  return OP == BinaryOp::add ? _mm256_add_ps(a, b) : _mm256_mul_ps(a, b);
}

// add and mul round the same in a vector as in a scalar, so the tail may go scalar.
template <BinaryOp OP, class T>
IGNIS_AVX2 void segment_avx2(T* o, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  int64_t i = 0;
  if (sa && sb) {
    for (; i + 8 <= n; i += 8) store8(o + i, apply_op8<OP>(load8(a + i), load8(b + i)));
  } else if (sa) {
    const __m256 vb = _mm256_set1_ps(to_f32(*b));
    for (; i + 8 <= n; i += 8) store8(o + i, apply_op8<OP>(load8(a + i), vb));
  } else if (sb) {
    const __m256 va = _mm256_set1_ps(to_f32(*a));
    for (; i + 8 <= n; i += 8) store8(o + i, apply_op8<OP>(va, load8(b + i)));
  } else {
    const __m256 v = apply_op8<OP>(_mm256_set1_ps(to_f32(*a)), _mm256_set1_ps(to_f32(*b)));
    for (; i + 8 <= n; i += 8) store8(o + i, v);
  }
  segment_scalar<OP>(o + i, a + i * sa, sa, b + i * sb, sb, n - i);
}
#endif

template <BinaryOp OP, class T>
void binary_typed(ThreadPool& pool, T* o, const T* a, const T* b, const BroadcastPlan& p,
                  int64_t total) {
  [[maybe_unused]] const bool simd = has_avx2();
  const int rank = int(p.size.size());
  const int64_t inner = p.size.back(), ia = p.stride_a.back(), ib = p.stride_b.back();
  pool.parallel_for(total, kElementGrain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> idx(static_cast<size_t>(rank));  // multi-index of `pos` in p.size
    int64_t rem = begin;
    for (int d = rank - 1; d >= 0; d--) {
      idx[size_t(d)] = rem % p.size[size_t(d)];
      rem /= p.size[size_t(d)];
    }
    for (int64_t pos = begin; pos < end;) {
      int64_t oa = 0, ob = 0;
      for (int d = 0; d < rank; d++) {
        oa += idx[size_t(d)] * p.stride_a[size_t(d)];
        ob += idx[size_t(d)] * p.stride_b[size_t(d)];
      }
      const int64_t seg = std::min(end - pos, inner - idx[size_t(rank - 1)]);
#if IGNIS_X86
      if (simd)
        segment_avx2<OP>(o + pos, a + oa, ia, b + ob, ib, seg);
      else
#endif
        segment_scalar<OP>(o + pos, a + oa, ia, b + ob, ib, seg);
      pos += seg;
      idx[size_t(rank - 1)] += seg;
      for (int d = rank - 1; d > 0 && idx[size_t(d)] == p.size[size_t(d)]; d--) {
        idx[size_t(d)] = 0;
        idx[size_t(d - 1)]++;
      }
    }
  });
}

}  // namespace

void binary(ThreadPool& pool, const Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op) {
  const int64_t total = out.numel();
  if (total == 0) return;
  const BroadcastPlan p = make_broadcast_plan(out, a, b);
  dispatch_float(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    if (op == BinaryOp::add)
      binary_typed<BinaryOp::add>(pool, o, ap, bp, p, total);
    else
      binary_typed<BinaryOp::mul>(pool, o, ap, bp, p, total);
  });
}

}  // namespace ignis::cpu
