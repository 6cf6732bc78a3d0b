// Run-time choice of vector code. AVX2/FMA code lives in functions marked IGNIS_AVX2 (a
// per-function target, so the rest of the binary stays baseline x86-64 and one build runs on
// any x86-64 CPU); callers check has_avx2() first. Elsewhere (arm64) only the scalar paths build.
#pragma once
#include <cstdint>

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(IGNIS_NO_SIMD)
#define IGNIS_X86 1
#include <immintrin.h>
#if defined(__GNUC__) || defined(__clang__)
#define IGNIS_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define IGNIS_AVX2
#endif
#else
#define IGNIS_X86 0
#define IGNIS_AVX2
#endif

namespace ignis::cpu {

#if IGNIS_X86
// dst [8][ldd] = r^T: r[i] holds row i of an 8 x 8 f32 block.
IGNIS_AVX2 inline void transpose8_store(__m256 (&r)[8], float* dst, int64_t ldd) {
  __m256 t[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    const __m256 a = t[4 * i], b = t[4 * i + 1], c = t[4 * i + 2], e = t[4 * i + 3];
    r[4 * i] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm256_shuffle_ps(b, e, _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm256_shuffle_ps(b, e, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x31));
  }
}

// dst [8][ldd] = src [8][lds]^T for an 8 x 8 f32 block.
IGNIS_AVX2 inline void transpose8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
  transpose8_store(r, dst, ldd);
}
#endif

// True when the CPU (and OS) support AVX2, FMA and F16C. Cached after the first call.
// IGNIS_SIMD=scalar in the environment forces the scalar paths (for testing them).
bool has_avx2();
// "avx2+fma" or "scalar": what the kernels use on this machine.
const char* simd_name();

}  // namespace ignis::cpu
