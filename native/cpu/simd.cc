// CPU feature detection for the kernels' run-time dispatch.
#include "simd.h"

#include <cstdlib>
#include <cstring>

namespace ignis::cpu {

static bool detect_avx2() {
  const char* force = std::getenv("IGNIS_SIMD");
  if (force && std::strcmp(force, "scalar") == 0) return false;
#if IGNIS_X86 && (defined(__GNUC__) || defined(__clang__))
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

const char* simd_name() { return has_avx2() ? "avx2+fma" : "scalar"; }

}  // namespace ignis::cpu
