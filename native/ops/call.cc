// The eager op call: one path for every op of the table (op.h), so an eager call and a plan's
// step check the same rules and run the same kernels.
#include <cstring>

#include "../core/limits.h"
#include "launch.h"
#include "op.h"
#include "ops.h"

namespace ignis::ops {

const char* display_name(const OpParams& p) {
  if (const auto* a = std::get_if<ActivationParams>(&p)) return kActivationNames[size_t(a->activation)];
  if (const auto* b = std::get_if<BinaryParams>(&p)) return kBinaryOpNames[size_t(b->op)];
  return op_name(op_of(p));
}

void run_kernel(const Exec& e, Backend& b, const OpParams& p, const Tensor* const* in, int n_in,
                const Tensor* const* out, int n_out, const int64_t* pos_dev) {
  b.run(e, KernelCall{p, in, n_in, out, n_out, pos_dev});
}

std::vector<Tensor> call(Runtime& rt, OpParams p, const std::vector<Tensor>& in) {
  const OpId id = op_of(p);
  if (id >= OpId::Count) fail(ErrorCode::Internal, "call: no op");
  const OpDef& d = op_def(id);
  const char* name = display_name(p);
  const int n = int(in.size());
  if (n < d.min_in || n > d.max_in || n == 0)
    fail(ErrorCode::Argument, std::string(name) + ": takes " + std::to_string(d.min_in) + " to " + std::to_string(d.max_in) +
                                  " tensors, got " + std::to_string(n));
  const Device dev = in[0].device();
  rt.check_lost(dev);
  Operand operands[kMaxOperands];
  const Tensor* ptrs[kMaxOperands];
  for (int i = 0; i < n; i++) {
    if (in[i].device() != dev)
      fail(ErrorCode::Device, std::string(name) + ": " + d.operands[0] + " is on " + dev.name() + " but " + d.operands[i] + " is on " +
                                  in[i].device().name());
    operands[i] = {&in[i].shape, in[i].dtype, d.operands[i]};
    ptrs[i] = &in[i];
  }
  Infer c(name, operands, n);
  std::vector<Meta> metas = d.infer(c, p);
  for (const Meta& m : metas)
    if (checked_numel(m.shape.data(), m.shape.size()) < 0)
      fail(ErrorCode::Range, std::string(name) + ": the output " + shape_str(m.shape) + " would be past the 2^40 elements a tensor may hold");
  Backend& b = backend(dev.kind);
  if (!b.supports(id, in[0].dtype))
    fail(ErrorCode::Device, std::string(name) + ": not available on " + dev.name() + ": " +
                                (d.elsewhere ? d.elsewhere : std::string("no kernel for ") + dtype_name(in[0].dtype)));
  DType dtypes[kMaxOperands];
  for (int i = 0; i < n; i++) dtypes[i] = in[i].dtype;
  if (const char* why = b.lacks(p, dtypes, n)) fail(ErrorCode::Device, std::string(name) + ": not available on " + dev.name() + ": " + why);
  settle(p, ptrs);
  std::vector<Tensor> outs;
  if (d.in_place) {
    outs.assign(in.begin(), in.begin() + d.n_out);
  } else {
    outs.reserve(metas.size());
    for (Meta& m : metas) outs.push_back(empty(std::move(m.shape), m.dtype, dev));
  }
  launch(rt, dev, in, outs, [&b, p](const Exec& e, const std::vector<Tensor>& i, const std::vector<Tensor>& o) {
    const Tensor* ip[kMaxOperands];
    const Tensor* op[2];
    for (size_t k = 0; k < i.size(); k++) ip[k] = &i[k];
    for (size_t k = 0; k < o.size(); k++) op[k] = &o[k];
    run_kernel(e, b, p, ip, int(i.size()), op, int(o.size()));
  });
  if (d.in_place) return {};
  return outs;
}

}  // namespace ignis::ops
