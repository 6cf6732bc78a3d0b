// The packed f32 GEMM engine shared by matmul, matmul_packed and matmul_q (gemm.cc; private to
// native/cpu), and the dense B packers (pack.cc). BLIS-style:
// B is packed block by block into f32 panels by a caller-supplied packer (so f16/bf16, a
// transposed B or int8 weights never get a full f32 copy), A into MR-row panels, 6x16 FMA tile.
#pragma once
#include <cstdint>

#include "../core/dtype.h"
#include "../core/limits.h"
#include "../core/op.h"
#include "../core/thread_pool.h"
#include "simd.h"

#if defined(__GNUC__) || defined(__clang__)
#define MATMUL_UNROLL _Pragma("GCC unroll 16")
#else
#define MATMUL_UNROLL
#endif

namespace ignis::cpu::gemm {

inline constexpr int64_t kMR = 6;   // rows of the register tile
inline constexpr int64_t kNR = kPanelWidth;  // columns of the register tile (two 8-float vectors)
static_assert(kNR == 16, "the AVX2 tile kernels hold 16 columns");

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

// B as the dense packers see it: b [K, N] (ld = N) or, transposed, [N, K] (ld = K).
struct DenseB {
  const void* b;
  int64_t ld;
};
// The packer of a dense float B of dtype dt (ctx: a DenseB), transposed or not.
PackB dense_packer(DType dt, bool transposed);

// Rows [0, nr) (nr <= kWordCols; the rest zero) of a matrix of 4-byte words (row stride ld
// words), words [0, nw), into dst [nw][kWordCols]: word w of row r at dst[w * kWordCols + r]. The
// panels of the dot-product GEMMs, whose instructions take a 4-byte group of each column (int8
// quads for vpdpbusd, bf16 pairs for vdpbf16ps).
inline constexpr int64_t kWordCols = 32;

// AMX's tile configuration (palette 1): per tile its rows and bytes a row; the AMX kernels
// (the int8 and bf16 GEMMs) load one with _tile_loadconfig.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
void pack_word_chunk(const uint32_t* src, int64_t ld, int64_t nw, int64_t nr, uint32_t* dst);

// out [M, N] = act(a [M, K] @ b [N, K]^T + bias [N]) for a bf16 b, and a, bias and out of dtype
// at (bf16, or f32), through AMX's tdpbf16ps or vdpbf16ps (products of bf16 pairs summed in f32).
// An f32 a goes in as two bf16 terms (hi + lo, 16 significant bits), on AMX only. false (nothing
// done) where the CPU lacks these, or K is odd.
bool gemm_bf16_t(ThreadPool* pool, int64_t M, int64_t N, int64_t K, const void* a, DType at, const bf16* b,
                 const void* bias, Activation act, void* out);

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

}  // namespace ignis::cpu::gemm
