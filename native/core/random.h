// The randn generator: a counter-based standard normal, a pure function of (seed, element
// index), so a tensor's samples do not depend on how the work is split, and the CUDA kernel
// includes this header and reproduces the CPU's samples. Host and device code.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define IGNIS_RANDOM_HD __host__ __device__ __forceinline__
#else
#define IGNIS_RANDOM_HD inline
#endif

namespace ignis {

// The exact formula (all integer arithmetic mod 2^64, G = 0x9E3779B97F4A7C15):
//   mix(z)  = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
//             z ^ (z >> 31)                                  (the splitmix64 finalizer)
//   key     = mix(seed + G)
//   bits    = mix(key + (index + 1) * G)
//   u1      = ((bits >> 32) + 1) * 2^-32                     in (0, 1], double
//   u2      = (bits & 0xFFFFFFFF) * 2^-32                    in [0, 1), double
//   sample  = (float)(sqrt(-2 log(u1)) * cos(2 pi u2))       Box-Muller, one output, in double
// |sample| <= sqrt(64 ln 2) ~ 6.66. Computed in double and rounded once to f32, so any
// faithful double log/cos (glibc, CUDA) gives the same f32 except in vanishingly rare ties.
// f16/bf16 tensors store the f32 sample rounded to nearest even.

IGNIS_RANDOM_HD uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

IGNIS_RANDOM_HD uint64_t randn_key(uint64_t seed) {
  return splitmix64_mix(seed + 0x9E3779B97F4A7C15ull);
}

// The standard normal sample for element `index` of a tensor filled with key = randn_key(seed).
IGNIS_RANDOM_HD float randn_at(uint64_t key, uint64_t index) {
  const uint64_t bits = splitmix64_mix(key + (index + 1) * 0x9E3779B97F4A7C15ull);
  const double u1 = (double(bits >> 32) + 1.0) * (1.0 / 4294967296.0);
  const double u2 = double(bits & 0xFFFFFFFFull) * (1.0 / 4294967296.0);
  return float(::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586476925 * u2));
}

}  // namespace ignis
