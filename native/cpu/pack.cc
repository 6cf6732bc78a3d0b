// The dense B packers of the GEMM engine (gemm.h: a float B [K, N], or transposed [N, K], into
// f32 panels of kNR columns), and pack_weight, which packs a fixed weight whole once.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace ignis::cpu {
namespace gemm {
namespace {

#if IGNIS_X86
template <class T>
IGNIS_AVX2 void widen16(const T* src, float* dst) {
  _mm256_storeu_ps(dst, load8(src));
  _mm256_storeu_ps(dst + 8, load8(src + 8));
}

// 16 rows of b (row stride ld) from column 0 into o [k][ldo] columns 0-15: 8 x 8 blocks, widened
// to f32 as they load (f16/bf16: a reduced-precision model's weights, packed once per K block of a
// prefill; f32 bits move unchanged, so 4-byte words of any kind go through as floats). Returns the
// columns done (the multiple of 8 below kc).
template <class T>
IGNIS_AVX2 int64_t transpose16_avx2(const T* b, int64_t ld, int64_t kc, float* o, int64_t ldo) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    transpose8(b + k, ld, o + k * ldo, ldo);
    transpose8(b + 8 * ld + k, ld, o + k * ldo + 8, ldo);
  }
  return k;
}
#endif

// b [K, ld] rows k0.., columns j0..j0+n -> panels: each row of b is read once, left to right.
template <class T>
void pack_b_nt(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  const auto& d = *static_cast<const DenseB*>(ctx);
  const T* b = static_cast<const T*>(d.b) + k0 * d.ld + j0;
  [[maybe_unused]] const bool avx2 = has_avx2();
  for (int64_t k = 0; k < kc; k++) {
    const T* row = b + k * d.ld;
    // The next call's columns of this row: rows are far apart, so the hardware prefetcher
    // does not see a stream.
    for (int64_t j = 0; j < std::min<int64_t>(n, 64); j += 64 / int64_t(sizeof(T)))
      __builtin_prefetch(row + n + j);
    // and this call's columns 8 rows down, the same kind of far-apart lines (+1.5% at 1024^3)
    if (k + 8 < kc)
      for (int64_t j = 0; j < n; j += 64 / int64_t(sizeof(T))) __builtin_prefetch(row + 8 * d.ld + j);
    for (int64_t j = 0; j < n; j += kNR) {
      const int64_t nr = std::min(kNR, n - j);
      float* o = dst + ((j / kNR) * kc + k) * kNR;
      if (nr == kNR) {
#if IGNIS_X86
        if (avx2) {
          widen16(row + j, o);
          continue;
        }
#endif
        for (int64_t c = 0; c < kNR; c++) o[c] = to_f32(row[j + c]);
      } else {
        for (int64_t c = 0; c < nr; c++) o[c] = to_f32(row[j + c]);
        for (int64_t c = nr; c < kNR; c++) o[c] = 0.f;
      }
    }
  }
}

// b [N, ld] (B transposed) rows j0..j0+n, columns k0..k0+kc -> panels.
template <class T>
void pack_b_t(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  const auto& d = *static_cast<const DenseB*>(ctx);
  for (int64_t j = 0; j < n; j += kNR) {
    const int64_t nr = std::min(kNR, n - j);
    const T* b = static_cast<const T*>(d.b) + (j0 + j) * d.ld + k0;
    float* o = dst + (j / kNR) * kc * kNR;
    int64_t k = 0;
#if IGNIS_X86
    if (nr == kNR && has_avx2()) k = transpose16_avx2(b, d.ld, kc, o, kNR);
#endif
    for (; k < kc; k++) {
      float* ok = o + k * kNR;
      for (int64_t c = 0; c < nr; c++) ok[c] = to_f32(b[c * d.ld + k]);
      for (int64_t c = nr; c < kNR; c++) ok[c] = 0.f;
    }
  }
}

}  // namespace

void pack_word_chunk(const uint32_t* src, int64_t ld, int64_t nw, int64_t nr, uint32_t* dst) {
  for (int64_t p = 0; p < kWordCols; p += 16) {
    const int64_t rows = std::clamp<int64_t>(nr - p, 0, 16);
    int64_t w = 0;
#if IGNIS_X86
    // 8 x 8 transposes of the words as floats (bits moved, never computed on)
    if (rows == 16 && has_avx2())
      w = transpose16_avx2(reinterpret_cast<const float*>(src + p * ld), ld, nw, reinterpret_cast<float*>(dst + p),
                           kWordCols);
#endif
    for (; w < nw; w++)
      for (int64_t r = 0; r < 16; r++) {
        uint32_t v = 0;
        if (r < rows) std::memcpy(&v, src + (p + r) * ld + w, 4);
        std::memcpy(dst + w * kWordCols + p + r, &v, 4);
      }
  }
}

PackB dense_packer(DType dt, bool transposed) {
  PackB r = nullptr;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    r = transposed ? pack_b_t<T> : pack_b_nt<T>;
  });
  return r;
}

}  // namespace gemm

void pack_weight(ThreadPool& pool, const Tensor& out, const Tensor& b, bool transpose_b) {
  const int64_t K = transpose_b ? b.dim(1) : b.dim(0), N = transpose_b ? b.dim(0) : b.dim(1);
  const int64_t npanel = out.dim(0);
  if (K == 0 || npanel == 0) return;
  gemm::DenseB ctx{b.raw(), transpose_b ? K : N};
  float* dst = out.data<float>();
  const gemm::PackB pack = gemm::dense_packer(b.dtype, transpose_b);
  // One panel (all of K) per item: panel q = columns [kNR q, kNR q + kNR) as [K][kNR].
  pool.parallel_for(npanel, 1, [&](int64_t s, int64_t e) {
    for (int64_t q = s; q < e; q++)
      pack(&ctx, 0, K, q * gemm::kNR, std::min(gemm::kNR, N - q * gemm::kNR), dst + q * K * gemm::kNR);
  });
}

}  // namespace ignis::cpu
