// Machine limits for the bench's "% of peak" column: peak FMA throughput (independent
// register-resident AVX2 FMA chains, one thread per core; and AVX-512 ones where the CPU has them), read bandwidth (AVX2 sum over a
// 256 MiB buffer) and copy bandwidth (memcpy, 256 MiB), each split over all cores.
// Built and run by bench/peak.ts; prints one JSON line. `probe N bw` skips the FMA part.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// 10 independent accumulators cover the FMA latency (4-5 cycles) x 2 ports.
constexpr int kChains = 10;

// kChains independent chains acc = acc * a + b of V vectors, in registers: GCC's vector
// types, contracted to FMAs, so one body serves each width (inlined into its wrapper's target).
typedef float V8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));

template <class V>
__attribute__((always_inline)) inline float fma_chains_of(long iters) {
  V acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = V{} + 0.001f * c;
  const V a = V{} + 0.999999f, b = V{} + 1e-7f;
  for (long i = 0; i < iters; ++i) {
    // fully unrolled so every chain stays in a register
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
  }
  V s = acc[0];
  for (int c = 1; c < kChains; ++c) s = s + acc[c];
  return s[0];
}

float fma_chains(long iters) { return fma_chains_of<V8>(iters); }  // AVX2 (the build's -mavx2 -mfma)
// 512-bit vectors, where the CPU has AVX-512 F.
__attribute__((target("avx512f"))) float fma_chains512(long iters) { return fma_chains_of<V16>(iters); }

// Sum of a float slice read as four streams at once (its quarters, one vector from each a step,
// each prefetched 2 KB ahead), with independent accumulators: a single sequential stream leaves
// part of a core's memory parallelism unused (the GEMVs it measures read several streams too).
float read_sum(const float* p, size_t n) {
  const size_t q = n / 4 / 32 * 32;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < q; i += 8) {
    for (int j = 0; j < 4; j++) _mm_prefetch(reinterpret_cast<const char*>(p + j * q + i + 512), _MM_HINT_T0);
    s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(p + q + i));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(p + 2 * q + i));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(p + 3 * q + i));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return out[0];
}

template <class F>
double seconds_on_all(int threads, F&& body) {
  std::vector<std::thread> pool;
  auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  // `probe N bw`: the bandwidths only (fmaGflops 0), for a row held to the bandwidth of its moment.
  const bool bw_only = argc > 2 && std::strcmp(argv[2], "bw") == 0;

  // FMA: best of 5 runs of ~40 ms each; flops = threads * iters * chains * 8 lanes * 2. Also
  // one thread alone times the thread count: a core busy with another process then does not
  // halve the peak, and cores do not share FMA units, so per-core rate x cores is the limit.
  const long iters = 4000000;
  const double flops_per_thread = double(iters) * kChains * 8 * 2;
  volatile float sink = 0;
  double best_all = 0, best_one = 0;
  for (int rep = 0; rep < (bw_only ? 0 : 5); ++rep) {
    double s = seconds_on_all(threads, [&](int) { sink = sink + fma_chains(iters); });
    best_all = std::max(best_all, threads * flops_per_thread / s / 1e9);
    s = seconds_on_all(1, [&](int) { sink = sink + fma_chains(iters); });
    best_one = std::max(best_one, flops_per_thread / s / 1e9);
  }
  const double best_fma = std::max(best_all, best_one * threads);
  // AVX-512: the same measure with 16 lanes (0 where the CPU has no AVX-512 F)
  double best512_all = 0, best512_one = 0;
  const bool has512 = __builtin_cpu_supports("avx512f");
  for (int rep = 0; rep < (bw_only || !has512 ? 0 : 5); ++rep) {
    double s = seconds_on_all(threads, [&](int) { sink = sink + fma_chains512(iters); });
    best512_all = std::max(best512_all, 2 * threads * flops_per_thread / s / 1e9);
    s = seconds_on_all(1, [&](int) { sink = sink + fma_chains512(iters); });
    best512_one = std::max(best512_one, 2 * flops_per_thread / s / 1e9);
  }
  const double best_fma512 = std::max(best512_all, best512_one * threads);

  // Copy: src -> dst, 256 MiB each, one slice per thread; bytes = read + written.
  const size_t bytes = size_t(256) << 20;
  char* src = static_cast<char*>(std::aligned_alloc(64, bytes));
  char* dst = static_cast<char*>(std::aligned_alloc(64, bytes));
  const size_t slice = bytes / threads;
  // First touch from the thread that copies the slice later.
  seconds_on_all(threads, [&](int t) {
    std::memset(src + t * slice, t + 1, slice);
    std::memset(dst + t * slice, 0, slice);
  });
  double best_read = 0;
  for (int rep = 0; rep < 5; ++rep) {
    double s = seconds_on_all(threads, [&](int t) {
      sink = sink + read_sum(reinterpret_cast<const float*>(src + t * slice), slice / sizeof(float));
    });
    best_read = std::max(best_read, double(slice) * threads / s / 1e9);
  }
  double best_copy = 0;
  for (int rep = 0; rep < 5; ++rep) {
    double s = seconds_on_all(threads, [&](int t) { std::memcpy(dst + t * slice, src + t * slice, slice); });
    best_copy = std::max(best_copy, 2.0 * slice * threads / s / 1e9);
  }
  std::printf("{\"threads\":%d,\"fmaGflops\":%.1f,\"fmaAllCoresGflops\":%.1f,\"fmaOneCoreGflops\":%.1f,"
              "\"fma512Gflops\":%.1f,\"readGBs\":%.1f,\"copyGBs\":%.1f,\"check\":%d}\n",
              threads, best_fma, best_all, best_one, best_fma512, best_read, best_copy,
              int(dst[bytes - 1]) + int(sink != 0));
  std::free(src);
  std::free(dst);
  return 0;
}
