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

// AVX512-VNNI with AVX512VL (vpdpbusd on 256-bit vectors): leaf 7 ECX 11 and EBX 31, the OS
// saving the opmask and ZMM state (XCR0 bits 5-7). IGNIS_SIMD=avx2 or scalar turns it off.
static bool detect_vnni() {
  if (!has_avx2()) return false;
  const char* force = std::getenv("IGNIS_SIMD");
  if (force && std::strcmp(force, "avx2") == 0) return false;
#if IGNIS_X86 && (defined(__clang__) || defined(__GNUC__))
  unsigned a, b, c, d;
#if defined(__clang__)
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
#else
  __cpuid_count(7, 0, a, b, c, d);
#endif
  if (!(c & (1u << 11)) || !(b & (1u << 31))) return false;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & 0xE6u) == 0xE6u;
#else
  return false;
#endif
}

bool has_vnni() {
  static const bool yes = detect_vnni();
  return yes;
}

const char* simd_name() { return has_vnni() ? "avx2+fma+avx512vnni" : has_avx2() ? "avx2+fma" : "scalar"; }

}  // namespace ignis::cpu
