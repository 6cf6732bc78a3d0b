// Sizes and layouts every layer agrees on, defined once: the binding exports them to lib/
// (which validates against them before a call), the op table checks them, and host and device
// code include this header.
#pragma once
#include <cstdint>

namespace ignis {

// The most dimensions a tensor may have.
inline constexpr int kMaxRank = 8;
// The most elements a tensor may have (2^40: a size in bytes always fits an int64 with room).
inline constexpr int64_t kMaxElements = int64_t(1) << 40;
// Columns per panel of a packed weight (pack_weight's f32 [ceil(N / w), K, w] layout), which is
// the CPU GEMM's register tile width.
inline constexpr int64_t kPanelWidth = 16;

}  // namespace ignis
