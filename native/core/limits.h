// Sizes and layouts every layer agrees on, defined once: the binding exports them to lib/
// (which validates against them before a call), the op table checks them, and host and device
// code include this header.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ignis {

// The most dimensions a tensor may have.
inline constexpr int kMaxRank = 8;
// The most elements a tensor may have (2^40: a size in bytes always fits an int64 with room).
inline constexpr int64_t kMaxElements = int64_t(1) << 40;
// The element count of a shape with every step checked: -1 when a dimension is negative or past
// kMaxElements, or the product is (a zero dimension does not excuse a huge sibling: strides and
// output shapes made from it would overflow).
inline int64_t checked_numel(const int64_t* dims, size_t rank) {
  int64_t n = 1;
  bool zero = false;
  for (size_t i = 0; i < rank; i++) {
    const int64_t d = dims[i];
    if (d < 0 || d > kMaxElements) return -1;
    if (d == 0) zero = true;
    else if (n > kMaxElements / d) return -1;
    else n *= d;
  }
  return zero ? 0 : n;
}

// Columns per panel of a packed weight (pack_weight's f32 [ceil(N / w), K, w] layout), which is
// the CPU GEMM's register tile width.
inline constexpr int64_t kPanelWidth = 16;

}  // namespace ignis
