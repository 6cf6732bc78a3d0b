// The bf16 GEMM (gemm.h: gemm_bf16_t): a bf16 model's prefill, where a (the activations) and b
// (the weight, [N, K] as stored) are both bf16. vdpbf16ps multiplies 16 lanes of bf16 pairs and
// adds both products to f32 lanes: the products are exact (8-bit significands), so this is the f32
// GEMM's arithmetic over the same bf16 inputs, at twice its products per instruction, and the
// weight is read as stored (no f32 copy, not even per block). Columns go in chunks of 32: a chunk
// of b is packed once per call as [K / 2][32] pairs (gemm::pack_word_chunk), then walked in blocks of
// 256 pairs (32 KB, in L1) by every 6-row tile of a, whose sums wait in an [M][32] buffer between
// blocks; a row's pair k is one 4-byte broadcast.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace ignis::cpu::gemm {

#if IGNIS_X86
namespace {

// c [R][kWordCols] (=|+=) a rows [R, 2 * K2] (row stride lda elements) @ the packed chunk b [K2][kWordCols].
template <int R>
IGNIS_AVX512_BF16 void tile(int64_t K2, const bf16* a, int64_t lda, const uint32_t* b, float* c, bool first) {
  __m512 acc[R][2];
  for (int r = 0; r < R; r++) {
    acc[r][0] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * kWordCols);
    acc[r][1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * kWordCols + 16);
  }
  for (int64_t kp = 0; kp < K2; kp++, b += kWordCols) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
    MATMUL_UNROLL
    for (int r = 0; r < R; r++) {
      uint32_t pair;
      std::memcpy(&pair, a + r * lda + 2 * kp, 4);
      __m512i xi = _mm512_set1_epi32(int(pair));
      // in a register: clang 16 (zig 0.11's, the musl builds) crashes folding the broadcast into
      // vdpbf16ps as an embedded-broadcast operand
      __asm__("" : "+v"(xi));
      const __m512bh x = (__m512bh)xi;
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
    }
  }
  for (int r = 0; r < R; r++) {
    _mm512_storeu_ps(c + r * kWordCols, acc[r][0]);
    _mm512_storeu_ps(c + r * kWordCols + 16, acc[r][1]);
  }
}

using Tile = void (*)(int64_t, const bf16*, int64_t, const uint32_t*, float*, bool);
// pairs of K a pass: a 32-column block of the chunk is 32 KB, read from L1 by every row tile
constexpr int64_t kPairs = 256;
constexpr Tile kTiles[kMR + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

}  // namespace
#endif

bool gemm_bf16_t(ThreadPool* pool, int64_t M, int64_t N, int64_t K, const bf16* a, const bf16* b, const bf16* bias,
                 Activation act, bf16* out) {
#if IGNIS_X86
  if (!has_avx512_bf16() || K % 2 || K == 0) return false;
  const int64_t K2 = K / 2, chunks = (N + kWordCols - 1) / kWordCols;
  auto run = [&](int64_t c0, int64_t c1) {
    std::vector<uint32_t> packed(size_t(K2 * kWordCols));
    std::vector<float> c(size_t(M * kWordCols));  // the chunk's [M][32] sums over the K blocks
    for (int64_t ch = c0; ch < c1; ch++) {
      const int64_t j0 = ch * kWordCols, nr = std::min(kWordCols, N - j0);
      pack_word_chunk(reinterpret_cast<const uint32_t*>(b + j0 * K), K2, K2, nr, packed.data());
      for (int64_t k0 = 0; k0 < K2; k0 += kPairs) {
        const int64_t kp = std::min(kPairs, K2 - k0);
        for (int64_t m = 0; m < M; m += kMR)
          kTiles[std::min(kMR, M - m)](kp, a + m * K + 2 * k0, K, packed.data() + k0 * kWordCols, c.data() + m * kWordCols, k0 == 0);
      }
      for (int64_t m = 0; m < M; m++)
        epilogue_row(c.data() + m * kWordCols, nr, bias ? bias + j0 : nullptr, DType::bf16, act, out + m * N + j0);
    }
  };
  if (pool && chunks > 1) pool->parallel_for(chunks, 1, run);
  else run(0, chunks);
  return true;
#else
  (void)pool, (void)M, (void)N, (void)K, (void)a, (void)b, (void)bias, (void)act, (void)out;
  return false;
#endif
}

}  // namespace ignis::cpu::gemm
