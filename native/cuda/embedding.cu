// embedding on CUDA: out [n, D] = table [V, D] rows picked by ids i32 [n]. Rows are copied as
// bytes (16-, 8-, 4-, 2- or 1-byte units, the widest the row size and alignment allow), so any
// table dtype works. An id outside [0, V) zeroes its row; the last block of the grid scans all
// ids and records the first bad one (lowest position, as cpu::embedding names it) in the Fault.
#include <type_traits>

#include "common.cuh"

namespace ignis::cuda {
namespace {

constexpr int kThreads = 128;

// Blocks [0, copy_blocks): row groups of kRowThreads threads copy out[r] = table[ids[r]] (units
// U, `units` per row), rows strided over the copy blocks. Block copy_blocks: the id check.
template <class U, int kRowThreads>
__global__ void __launch_bounds__(kThreads) embedding_kernel(U* out, const int32_t* ids, const U* table, int64_t n,
                                                             int64_t units, int64_t V, Fault* fault,
                                                             unsigned copy_blocks) {
  if (blockIdx.x == copy_blocks) {
    // min position of a bad id, over the block
    int64_t first = n;
    for (int64_t i = threadIdx.x; i < n; i += kThreads) {
      const int32_t id = ids[i];
      if ((id < 0 || id >= V) && i < first) first = i;
    }
    first = block_min<kThreads>(first);
    if (threadIdx.x == 0 && first < n && fault) report_fault(fault, ErrorCode::Index, FaultOp::embedding, ids[first], first, V);
    return;
  }
  constexpr int kRowsBlock = kThreads / kRowThreads;
  const int t = int(threadIdx.x) % kRowThreads;
  for (int64_t r = int64_t(blockIdx.x) * kRowsBlock + threadIdx.x / kRowThreads; r < n;
       r += int64_t(copy_blocks) * kRowsBlock) {
    const int32_t id = ids[r];
    U* o = out + r * units;  // [units]
    if (id >= 0 && id < V) {
      const U* src = table + int64_t(id) * units;  // [units]
      for (int64_t u = t; u < units; u += kRowThreads) o[u] = src[u];
    } else {
      for (int64_t u = t; u < units; u += kRowThreads) o[u] = U{};
    }
  }
}

template <class U>
void embedding_cuda(const Launch& L, void* out, const int32_t* ids, const void* table, int64_t n, int64_t row_bytes,
                    int64_t V) {
  const int64_t units = row_bytes / int64_t(sizeof(U));
  const int64_t cap = int64_t(L.sm_count > 0 ? L.sm_count : 132) * 16;
  auto go = [&](auto rt) {
    constexpr int R = decltype(rt)::value;
    int64_t copy_blocks = units == 0 ? 0 : ceil_div<int64_t>(n, kThreads / R);
    if (copy_blocks > cap) copy_blocks = cap;
    embedding_kernel<U, R><<<unsigned(copy_blocks + 1), kThreads, 0, stream_of(L)>>>(
        static_cast<U*>(out), ids, static_cast<const U*>(table), n, units, V, L.fault_record(), unsigned(copy_blocks));
    check_launch("embedding_kernel");
  };
  // a warp per row up to 64 units (1 KB of 16-byte units), the block above
  if (units > 64)
    go(std::integral_constant<int, kThreads>{});
  else
    go(std::integral_constant<int, 32>{});
}

}  // namespace

void embedding(const Launch& L, const Tensor& out, const Tensor& ids, const Tensor& table) {
  const int64_t n = ids.numel();
  if (n == 0) return;
  const int64_t V = table.dim(0);
  const int64_t row_bytes = table.dim(1) * int64_t(dtype_size(table.dtype));
  const uintptr_t align = reinterpret_cast<uintptr_t>(out.raw()) | reinterpret_cast<uintptr_t>(table.raw()) |
                          uintptr_t(row_bytes);
  const int32_t* id = ids.data<int32_t>();
  if (align % 16 == 0)
    embedding_cuda<Pack16>(L, out.raw(), id, table.raw(), n, row_bytes, V);
  else if (align % 8 == 0)
    embedding_cuda<uint2>(L, out.raw(), id, table.raw(), n, row_bytes, V);
  else if (align % 4 == 0)
    embedding_cuda<uint32_t>(L, out.raw(), id, table.raw(), n, row_bytes, V);
  else if (align % 2 == 0)
    embedding_cuda<uint16_t>(L, out.raw(), id, table.raw(), n, row_bytes, V);
  else
    embedding_cuda<uint8_t>(L, out.raw(), id, table.raw(), n, row_bytes, V);
}

}  // namespace ignis::cuda
