// Shape rules of the row-copy ops of compiled graphs: rows (a table's rows [start, start + count))
// and last (each sequence's last position).
#include "../core/limits.h"
#include "op.h"

namespace ignis::ops {

void check_rows(const char* op, const RowsParams& p, const Shape& table, int64_t count) {
  const int64_t rows = table[0];
  if (count < 0 || rows < 0) return;  // symbols: checked at each run
  if (p.start < 0 || p.start + count > rows)
    fail(ErrorCode::Argument, std::string(op) + ": rows [" + std::to_string(p.start) + ", " + std::to_string(p.start + count) +
                                  ") run past the table's " + std::to_string(rows));
}

// table [R, ...] -> [count, ...]
std::vector<Meta> infer_rows(Infer& c, RowsParams& p) {
  c.require_rank(0, 1, kMaxRank);
  c.fixed(0, 0, "the table's rows");
  Shape out = c.shape(0);
  out[0] = p.count.value;
  check_rows(c.prefix(), p, c.shape(0), p.count.value);
  return {{out, c.dtype(0)}};
}

// x [B, S, ...] -> [B, 1, ...]
std::vector<Meta> infer_last(Infer& c, LastParams&) {
  c.require_rank(0, 2, kMaxRank);
  Shape out = c.shape(0);
  out[1] = 1;
  return {{out, c.dtype(0)}};
}

}  // namespace ignis::ops
