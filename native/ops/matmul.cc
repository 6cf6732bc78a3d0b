// Shape rules of matmul (a @ b, batch dims broadcast) and of its packed-weight form:
// pack_weight (b once into the CPU GEMM's panels) and matmul_packed (x @ a packed b).
#include "../core/limits.h"
#include "op.h"

namespace ignis::ops {

// a [..., M, K] @ b [..., K, N] (b [..., N, K] with transpose_b) + bias [N] -> [batch..., M, N],
// in a's dtype. b's dtype is a's, or f16/bf16 with an f32 a (a 16-bit weight under f32
// activations).
std::vector<Meta> infer_matmul(Infer& c, MatmulParams& p) {
  c.require_float(0);
  if (!(c.dtype(0) == DType::f32 && (c.dtype(1) == DType::f16 || c.dtype(1) == DType::bf16))) c.same_dtype(0, 1);
  c.require_rank(0, 2, kMaxRank);
  c.require_rank(1, 2, kMaxRank);
  const int64_t M = c.dim(0, -2), K = c.dim(0, -1);
  const int64_t Kb = p.transpose_b ? c.dim(1, -1) : c.dim(1, -2), N = p.transpose_b ? c.dim(1, -2) : c.dim(1, -1);
  if (K != Kb)
    c.fail(ErrorCode::Shape, c.str(0) + " and " + c.name(1) + (p.transpose_b ? " (transposed) " : " ") + c.dims(c.shape(1)) +
                                 " do not fit: " + c.name(0) + " has K = " + c.dim_str(K) + ", " + c.name(1) + " has K = " +
                                 c.dim_str(Kb));
  const Shape& a = c.shape(0);
  const Shape& b = c.shape(1);
  Shape out = c.broadcast(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2), 0, 1,
                          "do not fit: their batch dims (all but the last two) do not broadcast");
  out.push_back(M);
  out.push_back(N);
  c.bias(2, 0, N);
  return {{out, c.dtype(0)}};
}

// b [K, N] (or [N, K] with transpose_b) -> f32 [ceil(N / kPanelWidth), K, kPanelWidth]
std::vector<Meta> infer_pack_weight(Infer& c, PackWeightParams& p) {
  c.require_float(0);
  c.require_rank(0, 2, 2);
  const int64_t K = c.fixed(0, p.transpose_b ? 1 : 0, "K"), N = c.fixed(0, p.transpose_b ? 0 : 1, "N");
  return {{{(N + kPanelWidth - 1) / kPanelWidth, K, kPanelWidth}, DType::f32}};
}

// x [..., K] @ packed (pack_weight of a [K, N] weight) + bias [N] -> [..., N]
std::vector<Meta> infer_matmul_packed(Infer& c, MatmulPackedParams& p) {
  c.require_float(0);
  c.require_rank(0, 1, kMaxRank);
  const Shape& pk = c.shape(1);
  if (c.dtype(1) != DType::f32 || pk.size() != 3 || pk[2] != kPanelWidth || p.n < 0 ||
      pk[0] != (p.n + kPanelWidth - 1) / kPanelWidth)
    c.fail(ErrorCode::Argument, std::string("the packed weight ") + c.dims(pk) +
                                    " is not a packWeight() result for N = " + std::to_string(p.n));
  const int64_t K = pk[1];
  if (c.dim(0, -1) != K)
    c.fail(ErrorCode::Shape, c.str(0) + " and the packed weight [K, N] = [" + std::to_string(K) + ", " +
                                 std::to_string(p.n) + "] do not fit: " + c.name(0) + " has K = " + c.dim_str(c.dim(0, -1)) +
                                 ", the weight has K = " + std::to_string(K));
  Shape out = c.shape(0);
  out.back() = p.n;
  c.bias(2, 0, p.n);
  return {{out, c.dtype(0)}};
}

}  // namespace ignis::ops
