// Shape rules of the int8 weight ops: quantize (w -> q, scales), dequantize (back to floats)
// and matmul_q (x @ the dequantized weight^T, dequantized inside the kernel).
#include "../core/limits.h"
#include "op.h"

namespace ignis::ops {
namespace {

void check_group(const Infer& c, int64_t K, int64_t group) {
  if (group <= 0 || K < 0 || K % group != 0)
    c.fail(ErrorCode::Argument, "groupSize " + std::to_string(group) + " must be positive and divide K = " + c.dim_str(K));
}

// q i8 [N, K] and scales f32 or f16 [N, K / group], operands iq and iq + 1.
void check_quantized(const Infer& c, int iq, int64_t group) {
  c.require_dtype(iq, DType::i8);
  if (c.dtype(iq + 1) != DType::f32 && c.dtype(iq + 1) != DType::f16)
    c.fail(ErrorCode::DType, std::string(c.name(iq + 1)) + " must be f32 or f16, got " + dtype_name(c.dtype(iq + 1)));
  c.require_rank(iq, 2, 2);
  check_group(c, c.dim(iq, 1), group);
  const Shape& s = c.shape(iq + 1);
  if (s.size() != 2 || s[0] != c.dim(iq, 0) || s[1] != c.dim(iq, 1) / group)
    c.fail_shapes(iq, iq + 1, "do not fit groupSize " + std::to_string(group));
}

}  // namespace

// w [N, K] -> q i8 [N, K], scales [N, K / group] of p.scales (f32 or f16)
std::vector<Meta> infer_quantize(Infer& c, QuantizeParams& p) {
  c.require_float(0);
  c.require_rank(0, 2, 2);
  const int64_t N = c.dim(0, 0), K = c.fixed(0, 1, "K");
  check_group(c, K, p.group);
  if (p.scales != DType::f32 && p.scales != DType::f16)
    c.fail(ErrorCode::DType, std::string("scales must be f32 or f16, got ") + dtype_name(p.scales));
  return {{{N, K}, DType::i8}, {{N, K / p.group}, p.scales}};
}

// q i8 [N, K], scales f32 or f16 [N, K / group] -> [N, K] of p.dtype
std::vector<Meta> infer_dequantize(Infer& c, DequantizeParams& p) {
  check_quantized(c, 0, p.group);
  if (!is_float(p.dtype)) c.fail(ErrorCode::DType, "dtype must be f32, f16 or bf16");
  return {{c.shape(0), p.dtype}};
}

// x [..., K] @ dequantize(q [N, K], scales)^T + bias [N] -> [..., N]
std::vector<Meta> infer_matmul_q(Infer& c, MatmulQParams& p) {
  check_quantized(c, 1, p.group);
  c.require_float(0);
  c.require_rank(0, 1, kMaxRank);
  const int64_t N = c.dim(1, 0), K = c.dim(1, 1);
  if (c.dim(0, -1) != K)
    c.fail_shapes(0, 1, "do not fit: " + std::string(c.name(0)) + " has K = " + c.dim_str(c.dim(0, -1)) +
                            ", the weight [N, K] has K = " + c.dim_str(K));
  Shape out = c.shape(0);
  out.back() = N;
  c.bias(3, 0, N);
  return {{out, c.dtype(0)}};
}

}  // namespace ignis::ops
