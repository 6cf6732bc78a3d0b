// The device dispatch of every kernel, written once: kernel::op(e, ...) runs the CUDA kernel on
// e.cuda's stream when the task is on a CUDA device, else the CPU kernel with e.pool. The op
// entry points (their launch() lambdas) and compiled plans' steps both call these.
#pragma once
#include <cstring>

#include "../cpu/cpu.h"
#include "../cuda/kernels.h"
#include "launch.h"

namespace ignis::ops::kernel {

// `IGNIS_ON_CUDA(e, cuda::op(*e.cuda, ...));` before the CPU call. A build without the CUDA
// backend compiles it away (no CUDA device can exist there).
#ifdef IGNIS_WITH_CUDA
#define IGNIS_ON_CUDA(e, call) \
  if ((e).cuda) {              \
    call;                      \
    return;                    \
  }
#else
#define IGNIS_ON_CUDA(e, call)
#endif

inline void matmul(const Exec& e, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor* bias,
                   const MatmulParams& p) {
  IGNIS_ON_CUDA(e, cuda::matmul(*e.cuda, out, a, b, bias, p));
  cpu::matmul(e.pool, out, a, b, bias, p);
}
inline void quantize(const Exec& e, const Tensor& q, const Tensor& scales, const Tensor& w, int64_t group) {
  IGNIS_ON_CUDA(e, cuda::quantize(*e.cuda, q, scales, w, group));
  cpu::quantize(e.pool, q, scales, w, group);
}
inline void dequantize(const Exec& e, const Tensor& out, const Tensor& q, const Tensor& scales, int64_t group) {
  IGNIS_ON_CUDA(e, cuda::dequantize(*e.cuda, out, q, scales, group));
  cpu::dequantize(e.pool, out, q, scales, group);
}
inline void matmul_q(const Exec& e, const Tensor& out, const Tensor& x, const Tensor& q, const Tensor& scales,
                     int64_t group, const Tensor* bias, Activation act) {
  IGNIS_ON_CUDA(e, cuda::matmul_q(*e.cuda, out, x, q, scales, group, bias, act));
  cpu::matmul_q(e.pool, out, x, q, scales, group, bias, act);
}
inline void attention(const Exec& e, const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                      const AttentionParams& p) {
  IGNIS_ON_CUDA(e, cuda::attention(*e.cuda, out, q, k, v, p));
  cpu::attention(e.pool, out, q, k, v, p);
}
// position_dev: CUDA graphs only (see cuda::kv_append).
inline void kv_append(const Exec& e, const Tensor& cache_k, const Tensor& cache_v, const Tensor& k,
                      const Tensor& v, int64_t position, const int64_t* position_dev = nullptr) {
  IGNIS_ON_CUDA(e, cuda::kv_append(*e.cuda, cache_k, cache_v, k, v, position, position_dev));
  cpu::kv_append(e.pool, cache_k, cache_v, k, v, position);
}
inline void rmsnorm(const Exec& e, const Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  IGNIS_ON_CUDA(e, cuda::rmsnorm(*e.cuda, out, x, weight, eps));
  cpu::rmsnorm(e.pool, out, x, weight, eps);
}
inline void layernorm(const Exec& e, const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      float eps) {
  IGNIS_ON_CUDA(e, cuda::layernorm(*e.cuda, out, x, weight, bias, eps));
  cpu::layernorm(e.pool, out, x, weight, bias, eps);
}
inline void activation(const Exec& e, const Tensor& out, const Tensor& x, Activation act) {
  IGNIS_ON_CUDA(e, cuda::activation(*e.cuda, out, x, act));
  cpu::activation(e.pool, out, x, act);
}
inline void softmax(const Exec& e, const Tensor& out, const Tensor& x, int axis) {
  IGNIS_ON_CUDA(e, cuda::softmax(*e.cuda, out, x, axis));
  cpu::softmax(e.pool, out, x, axis);
}
inline void argmax(const Exec& e, const Tensor& out, const Tensor& x) {
  IGNIS_ON_CUDA(e, cuda::argmax(*e.cuda, out, x));
  cpu::argmax(e.pool, out, x);
}
// position_dev: CUDA graphs only (see cuda::rope).
inline void rope(const Exec& e, const Tensor& out, const Tensor& x, int64_t position, float theta,
                 const int64_t* position_dev = nullptr) {
  IGNIS_ON_CUDA(e, cuda::rope(*e.cuda, out, x, position, theta, position_dev));
  cpu::rope(e.pool, out, x, position, theta);
}
inline void embedding(const Exec& e, const Tensor& out, const Tensor& ids, const Tensor& table) {
  IGNIS_ON_CUDA(e, cuda::embedding(*e.cuda, out, ids, table));
  cpu::embedding(e.pool, out, ids, table);
}
inline void binary(const Exec& e, const Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op) {
  IGNIS_ON_CUDA(e, cuda::binary(*e.cuda, out, a, b, op));
  cpu::binary(e.pool, out, a, b, op);
}
inline void fill(const Exec& e, const Tensor& out, double value) {
  IGNIS_ON_CUDA(e, cuda::fill(*e.cuda, out, value));
  cpu::fill(e.pool, out, value);
}
inline void randn(const Exec& e, const Tensor& out, uint64_t seed) {
  IGNIS_ON_CUDA(e, cuda::randn(*e.cuda, out, seed));
  cpu::randn(e.pool, out, seed);
}
inline void cast(const Exec& e, const Tensor& out, const Tensor& x) {
  IGNIS_ON_CUDA(e, cuda::cast(*e.cuda, out, x));
  cpu::cast(e.pool, out, x);
}
// n bytes within the device's memory
inline void copy(const Exec& e, void* dst, const void* src, size_t n) {
  IGNIS_ON_CUDA(e, cuda::copy_async(*e.cuda, dst, src, n));
  std::memcpy(dst, src, n);
}

}  // namespace ignis::ops::kernel
