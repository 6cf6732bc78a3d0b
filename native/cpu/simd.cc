// CPU feature detection for the kernels' run-time dispatch.
#include "simd.h"

#include <cstdlib>
#include <cstring>

#if IGNIS_X86 && (defined(__clang__) || defined(__GNUC__))
#include <cpuid.h>
#endif
#if IGNIS_X86 && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if IGNIS_ARM64 && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace ignis::cpu {

// Whether IGNIS_SIMD holds the kernels at `level` (scalar, avx2, avx512, avx512bf16, neon).
static bool forced(const char* level) {
  const char* force = std::getenv("IGNIS_SIMD");
  return force && std::strcmp(force, level) == 0;
}

#if IGNIS_X86 && (defined(__clang__) || defined(__GNUC__))
// XCR0's low word: the state components the OS saves (YMM, opmask/ZMM, AMX tiles).
static unsigned xcr0() {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return lo;
}
#endif

static bool detect_avx2() {
  if (forced("scalar")) return false;
#if IGNIS_X86 && defined(__clang__)
  // clang's __builtin_cpu_supports needs compiler-rt's cpu model (__cpu_model), which zig's
  // compiler-rt (the musl builds) lacks, so clang asks cpuid itself: AVX2 (leaf 7 EBX 5), FMA and
  // F16C (leaf 1 ECX 12, 29), and the OS saving the YMM state (OSXSAVE, XCR0 bits 1 and 2).
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
  if (!fma || !osxsave || !f16c) return false;
  if ((xcr0() & 6u) != 6u) return false;
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

// CPUID leaf 7 (subleaf 0: EBX, ECX; subleaf 1: EAX), read once, when AVX2 is in use, IGNIS_SIMD
// does not hold the kernels at AVX2, and the OS saves the opmask and ZMM state (XCR0 bits 5-7);
// else zeros.
struct Leaf7 {
  unsigned b = 0, c = 0, d = 0, a1 = 0;
};

static Leaf7 leaf7_avx512() {
  static const Leaf7 leaf = [] {
    Leaf7 l;
    if (!has_avx2()) return l;
    if (forced("avx2")) return l;
#if IGNIS_X86 && (defined(__clang__) || defined(__GNUC__))
    unsigned a, bb, cc, d;
    if (!__get_cpuid_count(7, 0, &a, &bb, &cc, &d)) return l;
    if ((xcr0() & 0xE6u) != 0xE6u) return l;
    l.b = bb, l.c = cc, l.d = d;
    if (a >= 1 && __get_cpuid_count(7, 1, &a, &bb, &cc, &d)) l.a1 = a;  // a: the highest subleaf
#endif
    return l;
  }();
  return leaf;
}

// AVX512-VNNI (ECX 11) with AVX512VL (EBX 31): vpdpbusd on 256-bit vectors.
bool has_vnni() {
  const Leaf7 l = leaf7_avx512();
  return (l.c & (1u << 11)) && (l.b & (1u << 31));
}

// AVX512 F (EBX 16), DQ (17), BW (30), VL (31).
bool has_avx512() {
  constexpr unsigned need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
  return (leaf7_avx512().b & need) == need;
}

// AVX512_BF16 (subleaf 1 EAX 5) with the rest of AVX-512; IGNIS_SIMD=avx512 leaves it out.
bool has_avx512_bf16() {
  static const bool yes = [] {
    return !forced("avx512") && has_avx512() && (leaf7_avx512().a1 & (1u << 5)) != 0;
  }();
  return yes;
}

// AMX-TILE (leaf 7 EDX 24) with AVX-512, the OS enabling the tile state (XCR0 bits 17 and 18),
// and Linux granting this process the tile data (arch_prctl ARCH_REQ_XCOMP_PERM, once);
// IGNIS_SIMD=avx512bf16 (or lower) leaves AMX out.
static bool amx_tiles() {
  static const bool yes = [] {
    if (forced("avx512bf16") || forced("avx512") || !has_avx512() || !(leaf7_avx512().d & (1u << 24))) return false;
#if IGNIS_X86 && defined(__linux__) && (defined(__clang__) || defined(__GNUC__))
    if ((xcr0() & (3u << 17)) != (3u << 17)) return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return yes;
}

// AMX-INT8: leaf 7 EDX 25.
bool has_amx_int8() { return amx_tiles() && (leaf7_avx512().d & (1u << 25)); }

// AMX-BF16: leaf 7 EDX 22.
bool has_amx_bf16() { return amx_tiles() && (leaf7_avx512().d & (1u << 22)); }

bool has_neon() {
  static const bool yes = [] {
    return IGNIS_ARM64 && !forced("scalar");
  }();
  return yes;
}

bool has_dotprod() {
  static const bool yes = [] {
    if (!has_neon() || forced("neon")) return false;
#if IGNIS_ARM64 && defined(__linux__)
    return (getauxval(AT_HWCAP) & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
#elif IGNIS_ARM64 && defined(__APPLE__)
    return true;  // every Apple silicon core has it
#else
    return false;
#endif
  }();
  return yes;
}

const char* simd_name() {
  if (has_neon()) return has_dotprod() ? "neon+dotprod" : "neon";
  if (has_amx_int8()) return has_avx512_bf16() ? "avx512+vnni+bf16+amx" : "avx512+vnni+amx";
  if (has_avx512_bf16()) return has_vnni() ? "avx512+vnni+bf16" : "avx512+bf16";
  if (has_avx512()) return has_vnni() ? "avx512+vnni" : "avx512";
  return has_vnni() ? "avx2+fma+avx512vnni" : has_avx2() ? "avx2+fma" : "scalar";
}

}  // namespace ignis::cpu
