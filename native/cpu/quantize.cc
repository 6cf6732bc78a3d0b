// quantize and dequantize: float weights [N, K] to the symmetric int8 format of core/quant.h
// (q i8 [N, K], scales f32 [N, K / group]) and back.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/quant.h"
#include "cpu.h"
#include "gemm.h"

namespace ignis::cpu {
namespace {

using gemm::advance;

// Rows of work per parallel chunk so each chunk has at least ~32K elements.
int64_t row_grain(int64_t K) { return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, K)); }

}  // namespace

void quantize(ThreadPool& pool, const Tensor& q, const Tensor& scales, const Tensor& w, int64_t group) {
  const int64_t K = w.dim(-1), N = K ? w.numel() / K : 0, G = group ? K / group : 0;
  if (N == 0 || K == 0) return;
  int8_t* qp = q.data<int8_t>();
  float* sp = scales.data<float>();
  pool.parallel_for(N, row_grain(K), [&](int64_t n0, int64_t n1) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = n0; n < n1; n++) {
      convert_to_f32(advance(w.raw(), w.dtype, n * K), w.dtype, row.data(), size_t(K));
      for (int64_t g = 0; g < G; g++) {
        const float* v = row.data() + g * group;
        float amax = 0.f;
        for (int64_t k = 0; k < group; k++) amax = std::max(amax, std::fabs(v[k]));
        const float scale = quant_scale(amax);
        sp[n * G + g] = scale;
        int8_t* o = qp + n * K + g * group;
        for (int64_t k = 0; k < group; k++) o[k] = quant_value(v[k], scale);  // core/quant.h
      }
    }
  });
}

void dequantize(ThreadPool& pool, const Tensor& out, const Tensor& q, const Tensor& scales, int64_t group) {
  const int64_t K = q.dim(-1), N = K ? q.numel() / K : 0, G = group ? K / group : 0;
  if (N == 0 || K == 0) return;
  const int8_t* qp = q.data<int8_t>();
  const float* sp = scales.data<float>();
  pool.parallel_for(N, row_grain(K), [&](int64_t n0, int64_t n1) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = n0; n < n1; n++) {
      for (int64_t g = 0; g < G; g++) {
        const float s = sp[n * G + g];
        for (int64_t k = g * group; k < (g + 1) * group; k++) row[size_t(k)] = float(qp[n * K + k]) * s;
      }
      convert_from_f32(row.data(), advance(out.raw(), out.dtype, n * K), out.dtype, size_t(K));
    }
  });
}

}  // namespace ignis::cpu
