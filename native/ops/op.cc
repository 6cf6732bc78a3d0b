// The op table (one row per op of core/op.h) and the helpers its rules share.
#include "op.h"

#include <algorithm>
#include <cmath>

#include "../core/limits.h"

namespace ignis::ops {

// --- Infer ---------------------------------------------------------------------------------------

std::string Infer::dim_str(int64_t d) const {
  if (d >= 0) return std::to_string(d);
  const size_t s = size_t(-1 - d);
  return symbols_ && s < symbols_->size() ? (*symbols_)[s] : "?";
}

std::string Infer::dims(const Shape& s) const {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) {
    if (i) r += ", ";
    r += dim_str(s[i]);
  }
  return r + "]";
}

void Infer::fail(ErrorCode code, const std::string& msg) const { ignis::fail(code, std::string(prefix_) + ": " + msg); }

void Infer::fail_shapes(int a, int b, const std::string& why) const {
  fail(ErrorCode::Shape, str(a) + " and " + str(b) + " " + why);
}

void Infer::require_float(int i) const {
  if (!is_float(dtype(i)))
    fail(ErrorCode::DType, std::string(name(i)) + " must be f32, f16 or bf16, got " + dtype_name(dtype(i)));
}

void Infer::require_dtype(int i, DType t) const {
  if (dtype(i) != t)
    fail(ErrorCode::DType, std::string(name(i)) + " must be " + dtype_name(t) + ", got " + dtype_name(dtype(i)));
}

void Infer::same_dtype(int a, int b) const {
  if (dtype(a) != dtype(b))
    fail(ErrorCode::DType, std::string(name(a)) + " is " + dtype_name(dtype(a)) + " but " + name(b) + " is " +
                               dtype_name(dtype(b)));
}

void Infer::require_rank(int i, int lo, int hi) const {
  if (rank(i) < lo || rank(i) > hi) {
    const std::string want = lo == hi ? std::to_string(lo) : std::to_string(lo) + ".." + std::to_string(hi);
    fail(ErrorCode::Shape, std::string(name(i)) + " must have rank " + want + ", got " + dims(shape(i)));
  }
}

int64_t Infer::fixed(int i, int d, const char* what) const {
  const int64_t v = dim(i, d);
  if (v < 0) fail(ErrorCode::Shape, str(i) + ": " + what + " must be a fixed size, not the symbol " + dim_str(v));
  return v;
}

void Infer::row_param(int x, int w) const {
  same_dtype(x, w);
  if (rank(w) != 1 || shape(w)[0] != dim(x, -1))
    fail_shapes(x, w, std::string("do not fit: ") + name(w) + " must be [" + dim_str(dim(x, -1)) + "] (" + name(x) +
                          "'s last dim)");
}

void Infer::bias(int b, int x, int64_t N) const {
  if (!has(b)) return;
  same_dtype(x, b);
  if (rank(b) != 1 || shape(b)[0] != N)
    fail(ErrorCode::Shape, str(b) + " must be [" + dim_str(N) + "], the output's last dim");
}

Shape Infer::broadcast(const Shape& a, const Shape& b, int ia, int ib, const char* why) const {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; i++) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(ErrorCode::Shape, str(ia) + " and " + str(ib) + " " + why + " (dim " + std::to_string(i) + ": " +
                                 dim_str(da) + " vs " + dim_str(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// --- the table -----------------------------------------------------------------------------------

namespace {

// The run-time checks (op.h: OpDef::run_check) on a step's operand shapes.
void run_check_kv_append(const char* op, const OpParams& p, const Shape* const* in, const Shape&) {
  check_kv_append(op, std::get<KvAppendParams>(p), *in[0], *in[2]);
}
void run_check_rows(const char* op, const OpParams& p, const Shape* const* in, const Shape& out) {
  check_rows(op, std::get<RowsParams>(p), *in[0], out[0]);
}
void run_check_attention(const char* op, const OpParams& p, const Shape* const* in, const Shape&) {
  check_attention(op, std::get<AttentionParams>(p), *in[0], *in[1]);
}

template <class P, std::vector<Meta> (*F)(Infer&, P&)>
std::vector<Meta> infer_any(Infer& c, OpParams& p) {
  return F(c, std::get<P>(p));
}

//                 name, operands, min/max in, outputs, in place, run on the CPU only: the hint
constexpr OpDef kTable[] = {
    {"matmul", {"a", "b", "bias"}, 2, 3, 1, false, nullptr, nullptr, nullptr},
    {"matmul_q", {"x", "quantized weight", "scales", "bias"}, 3, 4, 1, false, nullptr, nullptr, nullptr},
    {"matmul_packed", {"x", "packed weight", "bias"}, 2, 3, 1, false,
     "packed weights are the CPU GEMM's layout; pass the weight tensor to matmul itself", nullptr, nullptr},
    {"pack_weight", {"b"}, 1, 1, 1, false,
     "packed weights are the CPU GEMM's layout; pass the weight tensor to matmul itself", nullptr, nullptr},
    {"quantize", {"w"}, 1, 1, 2, false, nullptr, nullptr, nullptr},
    {"dequantize", {"q", "scales"}, 2, 2, 1, false, nullptr, nullptr, nullptr},
    {"attention", {"q", "k", "v"}, 3, 3, 1, false, nullptr, nullptr, run_check_attention},
    {"kv_append", {"the cache's k", "the cache's v", "k", "v"}, 4, 4, 2, true, nullptr, nullptr, run_check_kv_append},
    {"kv_write", {"the pool's k", "the pool's v", "k", "v", "slots"}, 5, 5, 2, true,
     "a paged KV cache (kv_write, paged_attention) runs on the CPU only, for now", nullptr, nullptr},
    {"paged_attention", {"q", "the pool's k", "the pool's v", "block tables", "rows"}, 5, 5, 1, false,
     "a paged KV cache (kv_write, paged_attention) runs on the CPU only, for now", nullptr, nullptr},
    {"rmsnorm", {"x", "weight"}, 2, 2, 1, false, nullptr, nullptr, nullptr},
    {"layernorm", {"x", "weight", "bias"}, 3, 3, 1, false, nullptr, nullptr, nullptr},
    {"activation", {"x"}, 1, 1, 1, false, nullptr, nullptr, nullptr},
    {"softmax", {"x"}, 1, 1, 1, false, nullptr, nullptr, nullptr},
    {"argmax", {"x"}, 1, 1, 1, false, nullptr, nullptr, nullptr},
    {"sample", {"logits"}, 1, 1, 1, false, "runs on the CPU (take the argmax on the device, or sample logits.to('cpu'))",
     nullptr, nullptr},
    {"rope", {"x", "positions"}, 1, 2, 1, false, nullptr, nullptr, nullptr},
    {"embedding", {"ids", "table"}, 2, 2, 1, false, nullptr, nullptr, nullptr},
    {"binary", {"a", "b"}, 2, 2, 1, false, nullptr, nullptr, nullptr},
    {"cast", {"x"}, 1, 1, 1, false, nullptr, nullptr, nullptr},
    {"rows", {"table"}, 1, 1, 1, false, nullptr, nullptr, run_check_rows},
    {"last", {"x"}, 1, 1, 1, false, nullptr, nullptr, nullptr},
    {"fill", {}, 0, 0, 1, false, nullptr, nullptr, nullptr},
    {"randn", {}, 0, 0, 1, false, nullptr, nullptr, nullptr},
};
static_assert(sizeof(kTable) / sizeof(kTable[0]) == size_t(OpId::Count), "every op needs a row");
constexpr bool same_name(const char* a, const char* b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}
constexpr bool rows_in_order() {
  for (size_t i = 0; i < size_t(OpId::Count); i++)
    if (!same_name(kTable[i].name, kOpNames[i])) return false;
  return true;
}
static_assert(rows_in_order(), "the table's rows must follow IGNIS_OPS");

// The table above with each row's infer filled from the op list.
struct Table {
  OpDef rows[size_t(OpId::Count)];
  Table() {
    for (size_t i = 0; i < size_t(OpId::Count); i++) rows[i] = kTable[i];
#define IGNIS_X(name, P) rows[size_t(OpId::name)].infer = infer_any<P, infer_##name>;
    IGNIS_OPS(IGNIS_X)
#undef IGNIS_X
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

const OpDef& op_def(OpId op) { return table().rows[size_t(op)]; }

const OpDef* find_op(const std::string& name, OpId* id) {
  for (size_t i = 0; i < size_t(OpId::Count); i++)
    if (name == kOpNames[i]) {
      *id = OpId(i);
      return &table().rows[i];
    }
  return nullptr;
}

namespace {
int64_t* position_of(RopeParams& p) { return &p.position; }
int64_t* position_of(KvAppendParams& p) { return &p.position; }
int64_t* position_of(RowsParams& p) { return &p.start; }
int64_t* position_of(AttentionParams& p) { return &p.q_pos0; }
template <class P> int64_t* position_of(P&) { return nullptr; }

void settle_params(AttentionParams& p, const Tensor* const* in) {
  const int64_t sq = in[0]->dim(1), skv = in[1]->dim(1);
  if (p.kv_len < 0) p.kv_len = p.q_pos0 >= 0 ? p.q_pos0 + sq : skv;
  if (p.q_pos0 < 0) p.q_pos0 = std::max<int64_t>(0, skv - sq);
  if (!(p.scale > 0.f) || !std::isfinite(p.scale)) p.scale = 1.f / std::sqrt(float(in[0]->dim(3)));
}
}  // namespace

int64_t* position_field(OpParams& p) {
  return std::visit([](auto& x) -> int64_t* {
    if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::monostate>) return nullptr;
    else return position_of(x);
  }, p);
}

void settle(OpParams& p, const Tensor* const* in) {
  if (auto* a = std::get_if<AttentionParams>(&p)) settle_params(*a, in);  // the one op with such params
}

}  // namespace ignis::ops
