// embedding: out [..., D] = table [V, D] rows picked by ids i32 [...]. The ids are data, so
// they are all checked before anything is written: a bad id fails the op with E_INDEX and
// leaves out untouched. Rows are copied as bytes, so the table may have any dtype.
#include <algorithm>
#include <cstring>
#include <string>

#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

void embedding(ThreadPool& pool, const Tensor& out, const Tensor& ids, const Tensor& table) {
  const int64_t n = ids.numel();
  const int64_t V = table.dim(0);
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; i++) {
    if (id[i] < 0 || id[i] >= V)
      fail(ErrorCode::Index, "embedding: id " + std::to_string(id[i]) + " at flat position " +
                                 std::to_string(i) + " is outside the table's " + std::to_string(V) +
                                 " rows");
  }
  const size_t row_bytes = size_t(table.numel() / (V > 0 ? V : 1)) * dtype_size(table.dtype);
  if (n == 0 || row_bytes == 0) return;
  char* o = static_cast<char*>(out.raw());
  const char* t = static_cast<const char*>(table.raw());
  const int64_t grain = std::max<int64_t>(1, int64_t(4 * kElementGrain / row_bytes));
  pool.parallel_for(n, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++)
      std::memcpy(o + size_t(i) * row_bytes, t + size_t(id[i]) * row_bytes, row_bytes);
  });
}

}  // namespace ignis::cpu
