// CPU feature detection for the kernels' run-time dispatch.
#include "simd.h"

#include <cstdlib>
#include <cstring>

#if IGNIS_X86 && (defined(__clang__) || defined(__GNUC__))
#include <cpuid.h>
#endif

namespace ignis::cpu {

static bool detect_avx2() {
  const char* force = std::getenv("IGNIS_SIMD");
  if (force && std::strcmp(force, "scalar") == 0) return false;
#if IGNIS_X86 && defined(__clang__)
  // clang's __builtin_cpu_supports needs compiler-rt's cpu model (__cpu_model), which zig's
  // compiler-rt (the musl builds) lacks, so clang asks cpuid itself: AVX2 (leaf 7 EBX 5), FMA and
  // F16C (leaf 1 ECX 12, 29), and the OS saving the YMM state (OSXSAVE, XCR0 bits 1 and 2).
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
  if (!fma || !osxsave || !f16c) return false;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 6u) != 6u) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return b & (1u << 5);
#elif IGNIS_X86 && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

bool has_avx2() {
  static const bool yes = detect_avx2();
  return yes;
}

// CPUID leaf 7 (EBX, ECX) when AVX2 is in use, IGNIS_SIMD does not hold the kernels at AVX2, and
// the OS saves the opmask and ZMM state (XCR0 bits 5-7); else zeros.
static void leaf7_avx512(unsigned& b, unsigned& c) {
  b = c = 0;
  if (!has_avx2()) return;
  const char* force = std::getenv("IGNIS_SIMD");
  if (force && std::strcmp(force, "avx2") == 0) return;
#if IGNIS_X86 && (defined(__clang__) || defined(__GNUC__))
  unsigned a, bb, cc, d;
#if defined(__clang__)
  if (!__get_cpuid_count(7, 0, &a, &bb, &cc, &d)) return;
#else
  __cpuid_count(7, 0, a, bb, cc, d);
#endif
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0xE6u) != 0xE6u) return;
  b = bb, c = cc;
#endif
}

// AVX512-VNNI (ECX 11) with AVX512VL (EBX 31): vpdpbusd on 256-bit vectors.
bool has_vnni() {
  static const bool yes = [] {
    unsigned b, c;
    leaf7_avx512(b, c);
    return (c & (1u << 11)) && (b & (1u << 31));
  }();
  return yes;
}

// AVX512 F (EBX 16), DQ (17), BW (30), VL (31).
bool has_avx512() {
  static const bool yes = [] {
    unsigned b, c;
    leaf7_avx512(b, c);
    const unsigned need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
    return (b & need) == need;
  }();
  return yes;
}

const char* simd_name() {
  if (has_avx512()) return has_vnni() ? "avx512+vnni" : "avx512";
  return has_vnni() ? "avx2+fma+avx512vnni" : has_avx2() ? "avx2+fma" : "scalar";
}

}  // namespace ignis::cpu
