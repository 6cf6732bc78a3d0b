// kv_append on CUDA: k, v rows written into a KV cache's rows, in W-sized units (16-byte packs
// where the rows allow). The kernel and its launch, as they were in attention.cu.
#include <algorithm>

#include "common.cuh"

namespace ignis::cuda {
namespace {

// ---- kv_append ----
// Row (b, s) of k, v [B, S, Hk * D] goes to row (b, pos + s) of the caches [B, maxSeq, Hk * D],
// pos = position (+ *position_dev); rows outside [0, maxSeq) are not written. Moves W-sized
// units: 16-byte packs where the rows allow, smaller otherwise.

template <class W>
__global__ void kv_append_kernel(W* cache_k, W* cache_v, const W* k, const W* v, int64_t rows, int64_t S,
                                 int64_t units, int64_t max_seq, int64_t position, const int64_t* position_dev) {
  const W* src = blockIdx.y ? v : k;
  W* dst = blockIdx.y ? cache_v : cache_k;
  const int64_t pos = position + (position_dev ? *position_dev : 0);
  const int64_t n = rows * units;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / units, u = i - row * units;
    const int64_t b = row / S, t = pos + (row - b * S);
    if (t < 0 || t >= max_seq) continue;
    dst[(b * max_seq + t) * units + u] = src[i];
  }
}

template <class W>
void kv_append_cuda(const Launch& L, void* cache_k, void* cache_v, const void* k, const void* v, int64_t rows,
                    int64_t S, int64_t row_bytes, int64_t max_seq, int64_t position, const int64_t* position_dev) {
  const int64_t units = row_bytes / int64_t(sizeof(W));
  const int64_t n = rows * units;
  const int64_t cap = int64_t(L.sm_count > 0 ? L.sm_count : 132) * 8;
  const dim3 grid(unsigned(std::min(ceil_div<int64_t>(n, 256), cap)), 2);
  kv_append_kernel<W><<<grid, 256, 0, stream_of(L)>>>(static_cast<W*>(cache_k), static_cast<W*>(cache_v),
                                                      static_cast<const W*>(k), static_cast<const W*>(v), rows, S,
                                                      units, max_seq, position, position_dev);
  check_launch("kv_append_kernel");
}

}  // namespace

void kv_append(const Launch& L, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k, const Tensor& v,
               int64_t position, const int64_t* position_dev) {
  const int64_t B = k.dim(0), S = k.dim(1), max_seq = cache_k.dim(1);
  const int64_t row_bytes = k.dim(2) * k.dim(3) * int64_t(dtype_size(k.dtype));
  if (B == 0 || S == 0 || row_bytes == 0) return;
  auto fits = [&](int64_t w) {
    return row_bytes % w == 0 && (reinterpret_cast<uintptr_t>(cache_k.raw()) | reinterpret_cast<uintptr_t>(cache_v.raw()) |
                                  reinterpret_cast<uintptr_t>(k.raw()) | reinterpret_cast<uintptr_t>(v.raw())) %
                                         uintptr_t(w) ==
                                     0;
  };
  const auto go = [&](auto w) {
    kv_append_cuda<decltype(w)>(L, cache_k.raw(), cache_v.raw(), k.raw(), v.raw(), B * S, S, row_bytes, max_seq,
                                position, position_dev);
  };
  if (fits(16)) return go(Pack16{});
  if (fits(4)) return go(uint32_t{});
  if (fits(2)) return go(uint16_t{});
  go(uint8_t{});
}

}  // namespace ignis::cuda
