// Run-time choice of vector code. AVX2/FMA code lives in functions marked IGNIS_AVX2 (a
// per-function target, so the rest of the binary stays baseline x86-64 and one build runs on
// any x86-64 CPU); callers check has_avx2() first. On arm64: NEON, and dotprod checked at run
// time (below).
#pragma once
#include <cstdint>

#include "../core/dtype.h"

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(IGNIS_NO_SIMD)
#define IGNIS_X86 1
#include <immintrin.h>
#else
#define IGNIS_X86 0
#endif
// A function's x86 target: its features where the kernels build them, else nothing.
#if IGNIS_X86 && (defined(__GNUC__) || defined(__clang__))
#define IGNIS_X86_TARGET(features) __attribute__((target(features)))
#else
#define IGNIS_X86_TARGET(features)
#endif
#define IGNIS_AVX2 IGNIS_X86_TARGET("avx2,fma,f16c")
#define IGNIS_VNNI IGNIS_X86_TARGET("avx2,fma,f16c,avx512vnni,avx512vl")
#define IGNIS_AVX512 IGNIS_X86_TARGET("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq")
#define IGNIS_AVX512_VNNI IGNIS_X86_TARGET("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,avx512vnni")
#define IGNIS_AVX512_BF16 IGNIS_X86_TARGET("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")
#define IGNIS_AMX IGNIS_X86_TARGET("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,amx-tile,amx-int8")
#define IGNIS_AMX_BF16 IGNIS_X86_TARGET("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,amx-tile,amx-bf16")

// AArch64: Advanced SIMD (NEON) is part of the architecture; the sdot int8 dot products
// (ARMv8.2 dotprod) are checked at run time and live in functions marked IGNIS_DOTPROD.
#if defined(__aarch64__) && !defined(IGNIS_NO_SIMD)
#define IGNIS_ARM64 1
#include <arm_neon.h>
#define IGNIS_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#else
#define IGNIS_ARM64 0
#define IGNIS_DOTPROD
#endif

namespace ignis::cpu {

#if IGNIS_X86
// 8 consecutive elements of a float dtype as f32 lanes, and back (stores round to nearest even,
// bit-identical to the scalar conversions of core/dtype.h).
IGNIS_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
IGNIS_AVX2 inline __m256 load8(const f16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
IGNIS_AVX2 inline __m256 load8(const bf16* p) {
  __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

IGNIS_AVX2 inline void store8(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
IGNIS_AVX2 inline void store8(f16* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
// Bit-identical to f32_to_bf16_bits: round to nearest even, NaN kept quiet.
IGNIS_AVX2 inline void store8(bf16* p, __m256 v) {
  __m256i u = _mm256_castps_si256(v);
  __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                      _mm256_set1_epi32(0x7f800000));
  __m256i hi = _mm256_srli_epi32(u, 16);
  __m256i bias =
      _mm256_add_epi32(_mm256_and_si256(hi, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7fff));
  __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
  __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), is_nan);
  __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}

IGNIS_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// dst [8][ldd] = r^T: r[i] holds row i of an 8 x 8 f32 block. Always inlined (into callers whose
// target includes AVX2): a call per 8 x 8 block costs packers a tenth of their time.
IGNIS_AVX2 inline __attribute__((always_inline)) void transpose8_store(__m256 (&r)[8], float* dst, int64_t ldd) {
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

// dst [8][ldd] = src [8][lds]^T for an 8 x 8 block of f32, f16 or bf16, widened to f32.
template <class T>
IGNIS_AVX2 inline __attribute__((always_inline)) void transpose8(const T* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) r[i] = load8(src + i * lds);
  transpose8_store(r, dst, ldd);
}
#endif

#if IGNIS_ARM64
// Four elements of a float dtype as f32 lanes.
inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const f16* p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
}
inline float32x4_t load4(const bf16* p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16));
}
#endif

// True when the CPU (and OS) support AVX2, FMA and F16C. Cached after the first call.
// IGNIS_SIMD=scalar in the environment forces the scalar paths (for testing them).
bool has_avx2();
// AVX512-VNNI on 256-bit vectors (vpdpbusd): the int8 dot products; off with IGNIS_SIMD=avx2.
bool has_vnni();
// AVX-512 F/BW/VL/DQ with the OS saving the ZMM state: the 512-bit GEMM tile; off with
// IGNIS_SIMD=avx2 (or scalar).
bool has_avx512();
// AVX512_BF16 (vdpbf16ps: bf16 pairs into f32) with AVX-512: the bf16 GEMM where AMX is not
// there; off with IGNIS_SIMD=avx512 (or lower).
bool has_avx512_bf16();
// AMX-TILE and AMX-INT8 (Linux, with the process granted the tile data state): the int8 GEMM's
// tdpbusd; off with IGNIS_SIMD=avx512bf16 (or lower).
bool has_amx_int8();
// AMX-TILE and AMX-BF16, as has_amx_int8: the bf16 GEMM's tdpbf16ps; off with IGNIS_SIMD=avx512bf16
// (or lower).
bool has_amx_bf16();
// AArch64 NEON (always there): the GEMM tile and int8 GEMV; off with IGNIS_SIMD=scalar.
bool has_neon();
// AArch64 dotprod (sdot; Linux HWCAP_ASIMDDP, every Apple silicon): the int8-activation GEMV;
// off with IGNIS_SIMD=neon (or scalar).
bool has_dotprod();
// "avx512+vnni+bf16+amx", ..., "avx2+fma", "neon+dotprod", "neon" or "scalar": what the kernels use on this machine.
const char* simd_name();

}  // namespace ignis::cpu
