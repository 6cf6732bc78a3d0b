// The packed f32 GEMM engine shared by matmul and matmul_q (private to native/cpu). BLIS-style:
// B is packed block by block into f32 panels by a caller-supplied packer (so f16/bf16, a
// transposed B or int8 weights never get a full f32 copy), A into MR-row panels, 6x16 FMA tile.
#pragma once
#include <cstdint>

#include "../core/dtype.h"
#include "../core/op_params.h"
#include "../core/thread_pool.h"
#include "simd.h"

#if defined(__GNUC__) || defined(__clang__)
#define MATMUL_UNROLL _Pragma("GCC unroll 16")
#else
#define MATMUL_UNROLL
#endif

namespace ignis::cpu::gemm {

inline constexpr int64_t kMR = 6;   // rows of the register tile
inline constexpr int64_t kNR = 16;  // columns of the register tile (two 8-float vectors)

// Writes B[k0 : k0 + kc, j0 : j0 + n] as f32 into ceil(n / kNR) panels dst [panel][kc][kNR]:
// row k of panel q at dst + (q * kc + k) * kNR, columns past n zero. Several panels a call, so a
// packer can read B's rows (or, transposed, its columns) in long runs.
using PackB = void (*)(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst);

struct Problem {
  int64_t M = 0, N = 0, K = 0;    // K > 0
  const void* a = nullptr;        // A [M, K], a_type, rows contiguous
  DType a_type = DType::f32;
  PackB pack_b = nullptr;         // B [K, N] as seen through the packer
  const void* b_ctx = nullptr;
  const float* b_packed = nullptr;  // or B prepacked whole: panel q ([K][kNR]) at + q * K * kNR
  const void* bias = nullptr;     // [N] of out_type, or null
  Activation act = Activation::none;
  void* out = nullptr;            // [M, N] of out_type
  DType out_type = DType::f32;
  int64_t nc = 0;                 // N block (0: the default); smaller keeps a packed block in L2
};

// out = act(A @ B + bias). pool null: runs on the calling thread only (the caller is already
// inside a parallel_for).
void run(ThreadPool* pool, const Problem& p);

// out[0, n) = act(v[0, n) + bias[0, n)) converted to dt; bias (dt, may be null) and out point at
// the row's first element. v may alias out when dt is f32.
void epilogue_row(const float* v, int64_t n, const void* bias, DType dt, Activation act, void* out);

// Byte-offset helpers for untyped rows of a float dtype.
inline const void* advance(const void* p, DType dt, int64_t elems) {
  return static_cast<const char*>(p) + elems * int64_t(dtype_size(dt));
}
inline void* advance(void* p, DType dt, int64_t elems) {
  return static_cast<char*>(p) + elems * int64_t(dtype_size(dt));
}

#if IGNIS_X86
// 8 consecutive elements of a float dtype as f32 lanes.
IGNIS_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
IGNIS_AVX2 inline __m256 load8(const f16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
IGNIS_AVX2 inline __m256 load8(const bf16* p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
IGNIS_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

}  // namespace ignis::cpu::gemm
