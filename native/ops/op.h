// The op table: each op of core/op.h once, with its operands, its shape and dtype rules
// (infer), what a graph step may bind at run time, and which backends run it. Eager calls
// (ops::call), compiled plans (graph/plan.cc) and the graph builder (through the binding's
// infer()) all apply these rules, so an op's shapes are written once, in native/ops/<op>.cc.
//
// Shapes given to infer may hold symbols: a negative dimension is the symbol -1 - d, bound by a
// graph's inputs at run time. A rule that compares two dimensions compares symbols by identity;
// a rule that needs a number (a divisibility, a bound) fails for a symbol, saying so.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../core/op.h"
#include "../core/tensor.h"

namespace ignis::ops {

inline constexpr int kMaxOperands = 5;

// One operand as the rules see it. name: "a" in an eager call, the node's label in a graph.
struct Operand {
  const Shape* shape = nullptr;  // null: an absent optional operand
  DType dtype = DType::f32;
  const char* name = "";
};

struct Meta {
  Shape shape;
  DType dtype = DType::f32;
};

// What infer works with: the operands, and helpers that phrase the errors ("<op>: <what>").
class Infer {
 public:
  // prefix: "matmul", or "graph.matmul #12" (the caller's, alive while the Infer is); symbols:
  // the names of a graph's symbols (or null).
  Infer(const char* prefix, const Operand* in, int n, const std::vector<std::string>* symbols = nullptr)
      : prefix_(prefix), in_(in), n_(n), symbols_(symbols) {}

  const char* prefix() const { return prefix_; }
  int count() const { return n_; }
  bool has(int i) const { return i < n_ && in_[i].shape != nullptr; }
  const Shape& shape(int i) const { return *in_[i].shape; }
  DType dtype(int i) const { return in_[i].dtype; }
  const char* name(int i) const { return in_[i].name; }
  int rank(int i) const { return int(in_[i].shape->size()); }
  // Dimension d of operand i (negative d from the end).
  int64_t dim(int i, int d) const { return shape(i)[size_t(d < 0 ? d + rank(i) : d)]; }

  // "[batch, 7, 64]": a shape with its symbols by name.
  std::string dims(const Shape& s) const;
  std::string dim_str(int64_t d) const;
  // "a [2, 3]": operand i's name and shape.
  std::string str(int i) const { return std::string(name(i)) + " " + dims(shape(i)); }

  [[noreturn]] void fail(ErrorCode code, const std::string& msg) const;
  [[noreturn]] void fail_shapes(int a, int b, const std::string& why) const;  // "a [..] and b [..] <why>"

  // The common rules, each failing with a message that names the operand.
  void require_float(int i) const;
  void require_dtype(int i, DType t) const;
  void same_dtype(int a, int b) const;
  void require_rank(int i, int lo, int hi) const;
  // A fixed (non-symbolic) dimension, or the failure `what`.
  int64_t fixed(int i, int d, const char* what) const;
  // x's last dim must equal w's only dim (w [D]: a norm's weight or bias), dtype x's.
  void row_param(int x, int w) const;
  // An optional bias operand b: absent, or [N] of operand x's dtype (matmul's fused bias).
  void bias(int b, int x, int64_t N) const;
  // Numpy broadcast of two shapes (symbols broadcast only against themselves or 1).
  Shape broadcast(const Shape& a, const Shape& b, int ia, int ib, const char* why) const;

 private:
  const char* prefix_;
  const Operand* in_;
  int n_;
  const std::vector<std::string>* symbols_;
};

struct OpDef {
  const char* name;
  const char* operands[kMaxOperands];  // names for messages, in order; optional ones last
  int min_in, max_in;
  int n_out;
  // The outputs are operands [0, n_out), written in place: nothing is allocated (kv_append).
  bool in_place;
  // A backend may lack this op (supports() false): the hint said with E_DEVICE.
  const char* elsewhere;
  // The output metas, after every rule is checked; may fill defaults into the params.
  std::vector<Meta> (*infer)(Infer& c, OpParams& p);
  // The checks only a run's integers and bound shapes can settle (a position past a cache's
  // end): null, or called by infer and by each run of a plan. in: the operands' shapes.
  void (*run_check)(const char* op, const OpParams& p, const Shape* const* in, const Shape& out);
};

const OpDef& op_def(OpId op);
// Null when no op has the name.
const OpDef* find_op(const std::string& name, OpId* id);

// A graph step's run-time integer goes to this field of its params (rope's position, rows'
// start, kv_append's position, attention's q_pos0); null for ops that take none.
int64_t* position_field(OpParams& p);
// Settles what the params left to the operands' sizes (attention's kv_len, q_pos0 and scale),
// once they are known: at an eager call, and at each run of a plan.
void settle(OpParams& p, const Tensor* const* in);

// The per-op rules (native/ops/<op>.cc), one per op of core/op.h.
#define IGNIS_X(name, P) std::vector<Meta> infer_##name(Infer& c, P& p);
IGNIS_OPS(IGNIS_X)
#undef IGNIS_X

// The rules a plan checks again at each run, with the run's position and sizes (infer applies
// them where the sizes are known). op: the message prefix.
void check_attention(const char* op, const AttentionParams& p, const Shape& q, const Shape& k);
void check_kv_append(const char* op, const KvAppendParams& p, const Shape& cache, const Shape& k);
void check_rows(const char* op, const RowsParams& p, const Shape& table, int64_t count);

}  // namespace ignis::ops
