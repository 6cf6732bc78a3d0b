// The row-copy ops of compiled graphs: rows (a range of a table's rows, e.g. learned position
// embeddings from a run's position) and last (each sequence's last position, for the logits).
#include <cstring>

#include "cpu.h"

namespace ignis::cpu {

// out = table[start : start + out rows]
void rows(ThreadPool&, const Tensor& out, const Tensor& table, int64_t start) {
  const size_t row = out.dim(0) ? out.nbytes() / size_t(out.dim(0)) : 0;
  std::memcpy(out.raw(), static_cast<const char*>(table.raw()) + size_t(start) * row, out.nbytes());
}

// out [B, 1, ...] = x [B, S, ...][:, S - 1]
void last(ThreadPool&, const Tensor& out, const Tensor& x) {
  const int64_t B = x.dim(0), S = x.dim(1);
  if (B == 0 || S == 0) return;
  const size_t row = out.nbytes() / size_t(B);
  for (int64_t b = 0; b < B; b++)
    std::memcpy(static_cast<char*>(out.raw()) + size_t(b) * row,
                static_cast<const char*>(x.raw()) + size_t(b * S + S - 1) * row, row);
}

}  // namespace ignis::cpu
