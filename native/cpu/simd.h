// Run-time choice of vector code. AVX2/FMA code lives in functions marked IGNIS_AVX2 (a
// per-function target, so the rest of the binary stays baseline x86-64 and one build runs on
// any x86-64 CPU); callers check has_avx2() first. Elsewhere (arm64) only the scalar paths build.
#pragma once

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

// True when the CPU (and OS) support AVX2, FMA and F16C. Cached after the first call.
// IGNIS_SIMD=scalar in the environment forces the scalar paths (for testing them).
bool has_avx2();
// "avx2+fma" or "scalar": what the kernels use on this machine.
const char* simd_name();

}  // namespace ignis::cpu
