// The plan of a numpy-style broadcast of two operands against out, shared by the CPU and CUDA
// binary kernels so both walk the same merged dims: out's dims with size-1 dims dropped and
// neighbours that both operands step through contiguously coalesced, each with a's and b's
// element strides (0 where that operand broadcasts). Host code only.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor.h"

namespace ignis {

struct BroadcastPlan {
  std::vector<int64_t> size, stride_a, stride_b;  // [rank], outermost first; rank >= 1
};

// Element strides of t for out's `rank` dims (t right-aligned against out; 0 where t has size 1).
inline std::vector<int64_t> broadcast_strides(const Tensor& t, int rank) {
  std::vector<int64_t> st(size_t(rank), 0);
  int64_t s = 1;
  for (int i = t.rank() - 1; i >= 0; i--) {
    const int o = rank - t.rank() + i;
    st[size_t(o)] = t.shape[size_t(i)] == 1 ? 0 : s;
    s *= t.shape[size_t(i)];
  }
  return st;
}

// A single element of out gives the plan size [1], strides [0].
inline BroadcastPlan make_broadcast_plan(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int rank = out.rank();
  const std::vector<int64_t> sa = broadcast_strides(a, rank), sb = broadcast_strides(b, rank);
  BroadcastPlan p;  // built innermost first, reversed at the end
  for (int i = rank - 1; i >= 0; i--) {
    const int64_t n = out.shape[size_t(i)];
    if (n == 1) continue;
    if (!p.size.empty()) {
      // Dim i folds into the inner one when both operands step through it contiguously.
      const int64_t inner = p.size.back();
      if (sa[size_t(i)] == p.stride_a.back() * inner && sb[size_t(i)] == p.stride_b.back() * inner) {
        p.size.back() *= n;
        continue;
      }
    }
    p.size.push_back(n);
    p.stride_a.push_back(sa[size_t(i)]);
    p.stride_b.push_back(sb[size_t(i)]);
  }
  if (p.size.empty()) {  // a single element
    p.size.push_back(1);
    p.stride_a.push_back(0);
    p.stride_b.push_back(0);
  }
  std::reverse(p.size.begin(), p.size.end());
  std::reverse(p.stride_a.begin(), p.stride_a.end());
  std::reverse(p.stride_b.begin(), p.stride_b.end());
  return p;
}

}  // namespace ignis
