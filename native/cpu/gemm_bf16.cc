// The bf16 GEMM (gemm.h: gemm_bf16_t): a bf16 model's prefill, where b (the weight, [N, K] as
// stored) is bf16 and a (the activations) bf16, or f32 on AMX as two bf16 terms (a's hi, rounded,
// and the rest, rounded: 16 significant bits, twice the tile products). AMX's tdpbf16ps and
// AVX512_BF16's vdpbf16ps multiply bf16 pairs and add both products to f32 sums: the products are
// exact (8-bit significands), so this is the f32 GEMM's arithmetic over the same bf16 inputs, and
// the weight is read as stored (no f32 copy, not even per block). Columns go in chunks of 32: a
// chunk of b is packed once per call as [K / 2][32] pairs (gemm::pack_word_chunk), which is AMX's
// B layout.
// - AMX (Sapphire Rapids and later): 32 x 32 blocks of four 16 x 16 f32 C tiles, each 32-wide
//   step of K two A tiles (16 rows of a) and two B tiles (16 pairs x 16 columns) for four
//   tdpbf16ps. On a Xeon here, vdpbf16ps issues every other cycle (half the f32 FMA's products),
//   so without AMX the f32 GEMM over converted panels would be as fast there.
// - AVX512_BF16: the chunk walked in blocks of 256 pairs (32 KB, in L1) by every 6-row tile of
//   a, whose sums wait in an [M][32] buffer between blocks; a row's pair k is one 4-byte broadcast.
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

// c [Mp][kWordCols] = (ap + lo) [Mp, Kp] (Mp a multiple of 32, Kp of 32; row stride Kp; lo
// null or a second term, f32 activations' remainder) @ the packed chunk b [Kp / 2][kWordCols].
// The tiles are configured and released here, with no call in between: a call through the PLT
// may meet glibc's lazy binder, whose xsave/xrstor can leave the tile configuration cleared
// (tileloadd then faults). Tiles 0-3 C, 4-5 A, 6-7 B (their numbers
// are immediates).
IGNIS_AMX_BF16 void amx_chunk(int64_t Mp, int64_t Kp, const bf16* ap, const bf16* lo, const uint32_t* b, float* c) {
  AmxTileConfig cfg;
  for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
  constexpr int64_t kLd = kWordCols * 4;  // bytes a row of b and of c
  for (int64_t m = 0; m < Mp; m += 32) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const bf16* a0 = ap + m * Kp;
    const bf16* a1 = a0 + 16 * Kp;
    for (int64_t k = 0; k < Kp; k += 32) {
      const uint32_t* bk = b + (k / 2) * kWordCols;
      _tile_loadd(4, a0 + k, Kp * 2);
      _tile_loadd(5, a1 + k, Kp * 2);
      _tile_loadd(6, bk, kLd);
      _tile_loadd(7, bk + 16, kLd);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
      if (lo) {  // the same B tiles against the second term's rows
        _tile_loadd(4, lo + m * Kp + k, Kp * 2);
        _tile_loadd(5, lo + (m + 16) * Kp + k, Kp * 2);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    float* cm = c + m * kWordCols;
    _tile_stored(0, cm, kLd);
    _tile_stored(1, cm + 16, kLd);
    _tile_stored(2, cm + 16 * kWordCols, kLd);
    _tile_stored(3, cm + 16 * kWordCols + 16, kLd);
  }
  _tile_release();
}

}  // namespace
#endif

bool gemm_bf16_t(ThreadPool* pool, int64_t M, int64_t N, int64_t K, const void* a, DType at, const bf16* b,
                 const void* bias, Activation act, void* out) {
#if IGNIS_X86
  if (K % 2 || K == 0) return false;
  const int64_t K2 = K / 2, chunks = (N + kWordCols - 1) / kWordCols;
  // AMX: a bf16 or f32 a; vdpbf16ps: a bf16 a only (an f32 one takes the f32 GEMM over converted
  // panels instead)
  const bool amx = has_amx_bf16();
  if (!amx && (at != DType::bf16 || !has_avx512_bf16())) return false;
  // AMX: a copied once into [Mp, Kp] bf16, zero past M rows and K columns (an f32 a as hi + lo,
  // each rounded to bf16: 16 significant bits of it); each chunk packed with zero pairs past K / 2,
  // so the tiles never read past either. vdpbf16ps reads a in place, and the chunk to K / 2.
  const int64_t Mp = amx ? (M + 31) / 32 * 32 : M, Kp = amx ? (K + 31) / 32 * 32 : K;
  const bool split = amx && at == DType::f32;
  std::vector<bf16> ap(amx ? size_t(Mp * Kp) : 0), lo(split ? size_t(Mp * Kp) : 0);  // value-initialized: +0
  if (amx) {
    auto copy_rows = [&](int64_t m0, int64_t m1) {
      std::vector<float> rest(split ? size_t(K) : 0);
      for (int64_t m = m0; m < m1; m++) {
        bf16* hi = ap.data() + m * Kp;
        if (!split) {
          std::memcpy(hi, static_cast<const bf16*>(a) + m * K, size_t(K) * 2);
          continue;
        }
        const float* x = static_cast<const float*>(a) + m * K;
        convert_from_f32(x, hi, DType::bf16, size_t(K));
        convert_to_f32(hi, DType::bf16, rest.data(), size_t(K));
        for (int64_t k = 0; k < K; k++) rest[size_t(k)] = x[k] - rest[size_t(k)];
        convert_from_f32(rest.data(), lo.data() + m * Kp, DType::bf16, size_t(K));
      }
    };
    if (pool && M > 16) pool->parallel_for(M, 16, copy_rows);
    else copy_rows(0, M);
  }
  const bf16* ab = static_cast<const bf16*>(a);
  auto run = [&](int64_t c0, int64_t c1) {
    std::vector<uint32_t> packed(size_t(Kp / 2 * kWordCols), 0u);
    std::vector<float> c(size_t(Mp * kWordCols));  // the chunk's [rows][32] sums
    for (int64_t ch = c0; ch < c1; ch++) {
      const int64_t j0 = ch * kWordCols, nr = std::min(kWordCols, N - j0);
      pack_word_chunk(reinterpret_cast<const uint32_t*>(b + j0 * K), K2, K2, nr, packed.data());
      if (amx) {
        amx_chunk(Mp, Kp, ap.data(), split ? lo.data() : nullptr, packed.data(), c.data());
      } else {
        for (int64_t k0 = 0; k0 < K2; k0 += kPairs) {  // blocks of pairs, their sums in c between them
          const int64_t kp = std::min(kPairs, K2 - k0);
          for (int64_t m = 0; m < M; m += kMR)
            kTiles[std::min(kMR, M - m)](kp, ab + m * K + 2 * k0, K, packed.data() + k0 * kWordCols, c.data() + m * kWordCols,
                                         k0 == 0);
        }
      }
      // the chunk's sums into out rows [0, M), columns [j0, j0 + nr): bias, activation, dtype
      for (int64_t m = 0; m < M; m++)
        epilogue_row(c.data() + m * kWordCols, nr, bias ? advance(bias, at, j0) : nullptr, at, act,
                     advance(out, at, m * N + j0));
    }
  };
  if (pool && chunks > 1) pool->parallel_for(chunks, 1, run);
  else run(0, chunks);
  return true;
#else
  (void)pool, (void)M, (void)N, (void)K, (void)a, (void)at, (void)b, (void)bias, (void)act, (void)out;
  return false;
#endif
}

}  // namespace ignis::cpu::gemm
