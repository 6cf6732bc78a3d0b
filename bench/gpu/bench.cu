// The GPU benchmark's ignis side: times our CUDA kernels through their entry points
// (native/cuda/kernels.h) on GPU 0 and prints one JSON object per row, for bench/gpu/report.py
// to set beside PyTorch's rows (bench/gpu/torch_peer.py, same ids, same timing method).
//
//   ignis-gpu-bench --list        the row ids, one per line
//   ignis-gpu-bench --meta        one JSON object describing the GPU
//   ignis-gpu-bench [id...]       those rows (all when none), each: check, then time
//
// Each row first checks sampled outputs of one launch against a float64 host reference (the
// output poisoned with NaN first, so an unwritten element fails), then times it: warm-up,
// then chunks of launches queued behind a gate kernel that holds the GPU until the whole chunk
// is enqueued (host overhead stays out of the numbers), one event pair per launch, median.
// Launches rotate over copies of their inputs and outputs that together exceed 4x the L2, so
// weight-streaming kernels read from HBM as they would in a model.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../native/core/backend.h"
#include "../../native/cuda/common.cuh"
#include "../../native/cuda/kernels.h"
#include "../../native/cuda/runtime.h"

// A kernel file that did not compile leaves its entry points undefined. bench/gpu/build.sh links
// whatever compiled, and these weak references let the harness link anyway and report those rows
// as missing instead of losing the whole run. (If kernels.h changes a signature, these become
// overloads and linked(&...) below stops compiling: update them to match.)
namespace ignis::cuda {
__attribute__((weak)) void matmul(const Launch&, const Tensor&, const Tensor&, const Tensor&, const Tensor*,
                                  const MatmulParams&);
__attribute__((weak)) void quantize(const Launch&, const Tensor&, const Tensor&, const Tensor&, int64_t);
__attribute__((weak)) void matmul_q(const Launch&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    int64_t, const Tensor*, Activation);
__attribute__((weak)) void attention(const Launch&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                     const AttentionParams&);
__attribute__((weak)) void rmsnorm(const Launch&, const Tensor&, const Tensor&, const Tensor&, float);
__attribute__((weak)) void rope(const Launch&, const Tensor&, const Tensor&, int64_t, float, const int64_t*);
__attribute__((weak)) void embedding(const Launch&, const Tensor&, const Tensor&, const Tensor&);
__attribute__((weak)) void randn(const Launch&, const Tensor&, uint64_t);
}  // namespace ignis::cuda

namespace {

using ignis::DType;
using ignis::Shape;
using ignis::Tensor;
namespace ic = ignis::cuda;

const ignis::Device kGpu{ignis::Device::CUDA, 0};

// Tensors allocate through the backend registry (core/backend.h). The harness registers this
// allocation-only CUDA backend instead of native/cuda/backend.cc, whose dispatch switch would
// pull every kernel file into the link (the weak references above let a missing one be skipped).
class BenchBackend final : public ignis::Backend {
 public:
  ignis::Device::Kind kind() const override { return ignis::Device::CUDA; }
  const ignis::BackendStatus& status() override { return ic::probe(); }
  void* allocate(int device, size_t bytes) override { return ic::device_alloc(device, bytes); }
  void free(int device, void* p, size_t bytes) noexcept override { ic::device_free(device, p, bytes); }
  ignis::MemoryStats memory(int) override { return {}; }
  int64_t empty_cache(int) override { return 0; }
  void copy_in(int device, void* dst, const void* src, size_t bytes) override { ic::upload(device, dst, src, bytes); }
  void copy_out(int device, void* dst, const void* src, size_t bytes) override { ic::download(device, dst, src, bytes); }
  void synchronize(int device) override { ic::synchronize(device); }
  void clear_fault(int device) override { ic::clear_fault(device); }
  void task(int, ignis::ThreadPool&, const std::function<void(const ignis::Exec&)>&) override {
    throw std::runtime_error("the GPU bench launches kernels itself");
  }
  bool supports(ignis::OpId, DType) const override { return false; }
  void run(const ignis::Exec&, const ignis::KernelCall&) override {
    throw std::runtime_error("the GPU bench launches kernels itself");
  }
};

template <class F>
bool linked(F* f) {
  return f != nullptr;
}
#define IGNIS_REQUIRE(fn, file)                                                                        \
  do {                                                                                                \
    if (!linked(&ic::fn))                                                                             \
      throw std::runtime_error("missing entry point ignis::cuda::" #fn " (" file                      \
                               " did not compile or link: see the build log)");                       \
  } while (0)

// ---- JSON rows ------------------------------------------------------------------------------------

std::string json_str(const std::string& s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      r += '\\';
      r += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      r += buf;
    } else {
      r += char(c);
    }
  }
  return r + "\"";
}

class Row {
 public:
  Row(const std::string& id, const std::string& name, const std::string& shape, const std::string& kind) {
    str("impl", "ignis").str("id", id).str("name", name).str("shape", shape).str("kind", kind);
  }
  Row& str(const char* key, const std::string& v) { return put(key, json_str(v)); }
  Row& num(const char* key, double v) {
    if (!std::isfinite(v)) return put(key, "null");
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return put(key, buf);
  }
  void print() const {
    std::printf("{%s}\n", body_.c_str());
    std::fflush(stdout);
  }

 private:
  Row& put(const char* key, const std::string& v) {
    if (!body_.empty()) body_ += ", ";
    body_ += json_str(key) + ": " + v;
    return *this;
  }
  std::string body_;
};

// ---- the gate: holds the stream until the host has queued a whole chunk of timed launches ----------

__device__ __forceinline__ unsigned long long globaltimer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Spins until the host sets *open (pinned host memory), or gives up after timeout_ns and says so.
__global__ void gate_kernel(const volatile int* open, volatile int* timed_out, unsigned long long timeout_ns) {
  const unsigned long long t0 = globaltimer_ns();
  while (*open == 0) {
    if (globaltimer_ns() - t0 > timeout_ns) {
      *timed_out = 1;
      return;
    }
    __nanosleep(1000);
  }
}

class Gate {
 public:
  Gate() {
    IGNIS_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&host_), 2 * sizeof(int), cudaHostAllocMapped));
    IGNIS_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&dev_), host_, 0));
  }
  ~Gate() { cudaFreeHost(host_); }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  // Called with the stream idle (after a synchronize).
  void close(cudaStream_t s) {
    flag(0) = 0;
    flag(1) = 0;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    gate_kernel<<<1, 1, 0, s>>>(dev_, dev_ + 1, 500ull * 1000 * 1000);
    ic::check_launch("gate_kernel");
  }
  void open() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    flag(0) = 1;
  }
  bool timed_out() { return flag(1) != 0; }

 private:
  volatile int& flag(int i) { return reinterpret_cast<volatile int*>(host_)[i]; }
  int* host_ = nullptr;
  int* dev_ = nullptr;
};

// ---- the bench context and the timer --------------------------------------------------------------

struct Bench {
  std::vector<std::shared_ptr<ignis::Storage>> keep;  // scratch of queued launches
  ic::Launch L;
  cudaStream_t stream = nullptr;
  cudaDeviceProp prop{};
  double budget_ms = 800;  // timed work per row, roughly (iterations are clamped to [20, 200])
  Gate* gate = nullptr;

  void sync() {
    ic::synchronize(0);
    keep.clear();
  }
  // How many input sets to rotate over so that together they exceed 4x the L2.
  int copies_for(double bytes_per_copy) const {
    const double target = 4.0 * double(prop.l2CacheSize > 0 ? prop.l2CacheSize : 50 << 20);
    return int(std::clamp(std::ceil(target / std::max(bytes_per_copy, 1.0)), 1.0, 16.0));
  }
};

// n CUDA events, released together.
class Events {
 public:
  explicit Events(int n) : e_(static_cast<size_t>(n), nullptr) {
    for (auto& e : e_) IGNIS_CUDA_CHECK(cudaEventCreate(&e));
  }
  ~Events() {
    for (auto e : e_)
      if (e) cudaEventDestroy(e);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  void record(int i, cudaStream_t s) { IGNIS_CUDA_CHECK(cudaEventRecord(e_[size_t(i)], s)); }
  float ms(int from, int to) const {  // from event `from` to event `to`, both completed
    float x = 0;
    IGNIS_CUDA_CHECK(cudaEventElapsedTime(&x, e_[size_t(from)], e_[size_t(to)]));
    return x;
  }

 private:
  std::vector<cudaEvent_t> e_;
};

struct Timing {
  double median_ms = 0, min_ms = 0;
  int iters = 0, copies = 1, gate_timeouts = 0;
};

// fn(c) enqueues one launch on input set c. Returns the median of per-launch event times.
template <class Fn>
Timing time_launches(Bench& B, int copies, Fn&& fn) {
  cudaStream_t s = B.stream;
  Timing t;
  t.copies = copies;
  fn(0);  // module load, first touch of the pages
  B.sync();

  Events rough(2);  // a rough per-launch time sets the iteration count
  rough.record(0, s);
  for (int i = 0; i < 3; i++) fn(i % copies);
  rough.record(1, s);
  B.sync();
  const float est = std::max(rough.ms(0, 1) / 3.f, 1e-3f);
  const int n = std::clamp(int(B.budget_ms / est), 20, 200);
  const int chunk = std::min(n, 50);

  for (int i = 0; i < chunk; i++) fn(i % copies);  // warm-up; also fills the allocator's bins for scratch
  B.sync();

  Events ev(2 * chunk);  // launch j of a chunk: events 2j (start) and 2j + 1 (stop)
  std::vector<float> ms;
  int next = 0;
  while (int(ms.size()) < n) {
    const int m = std::min(chunk, n - int(ms.size()));
    B.gate->close(s);
    for (int j = 0; j < m; j++) {
      ev.record(2 * j, s);
      fn(next++ % copies);
      ev.record(2 * j + 1, s);
    }
    B.gate->open();
    B.sync();
    if (B.gate->timed_out()) t.gate_timeouts++;
    for (int j = 0; j < m; j++) ms.push_back(ev.ms(2 * j, 2 * j + 1));
  }
  std::sort(ms.begin(), ms.end());
  const size_t k = ms.size();
  t.median_ms = k % 2 ? ms[k / 2] : 0.5 * (double(ms[k / 2 - 1]) + double(ms[k / 2]));
  t.min_ms = ms.front();
  t.iters = int(k);
  return t;
}

void put_timing(Row& r, const Timing& t) {
  r.num("ms", t.median_ms).num("ms_min", t.min_ms).num("iters", t.iters).num("copies", t.copies);
  if (t.gate_timeouts) r.num("gate_timeouts", t.gate_timeouts);
}

// ---- inputs ---------------------------------------------------------------------------------------

// Used only when randn's file did not build: approximately standard normal samples from a hash.
__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_f32(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

template <class T>
__global__ void fallback_randn_kernel(T* out, int64_t n, uint64_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(i + 1) * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u1 = (float(uint32_t(z >> 40)) + 1.f) * (1.f / 16777216.f);  // (0, 1]
    const float u2 = float(uint32_t(z) >> 8) * (1.f / 16777216.f);           // [0, 1)
    store_f32(out + i, sqrtf(-2.f * logf(u1)) * cospif(2.f * u2));
  }
}

void fill_randn(Bench& B, const Tensor& t, uint64_t seed) {
  if (linked(&ic::randn)) return ic::randn(B.L, t, seed);
  const int64_t n = t.numel();
  const int blocks = int(std::min<int64_t>(ic::ceil_div<int64_t>(n, 256), 8192));
  if (n == 0) return;
  switch (t.dtype) {
    case DType::f32: fallback_randn_kernel<<<blocks, 256, 0, B.stream>>>(t.data<float>(), n, seed); break;
    case DType::f16: fallback_randn_kernel<<<blocks, 256, 0, B.stream>>>(t.data<__half>(), n, seed); break;
    case DType::bf16: fallback_randn_kernel<<<blocks, 256, 0, B.stream>>>(t.data<__nv_bfloat16>(), n, seed); break;
    default: throw std::runtime_error("fill_randn: not a float tensor");
  }
  ic::check_launch("fallback_randn_kernel");
}

Tensor randn(Bench& B, const Shape& shape, DType dt, uint64_t seed) {
  Tensor t = ignis::empty(shape, dt, kGpu);
  fill_randn(B, t, seed);
  return t;
}

// All bits set: NaN in f32, f16 and bf16, so an output element the kernel never wrote fails the check.
void poison(Bench& B, const Tensor& t) { IGNIS_CUDA_CHECK(cudaMemsetAsync(t.raw(), 0xff, t.nbytes(), B.stream)); }

void upload(const Tensor& t, const void* src) {
  IGNIS_CUDA_CHECK(cudaMemcpy(t.raw(), src, t.nbytes(), cudaMemcpyHostToDevice));
  IGNIS_CUDA_CHECK(cudaDeviceSynchronize());  // a pageable upload may return before its DMA ends
}

// A device tensor as f32 on the host (after B.sync()).
std::vector<float> to_host(const Tensor& t) {
  const size_t n = size_t(t.numel());
  std::vector<uint8_t> raw(t.nbytes());
  if (n) IGNIS_CUDA_CHECK(cudaMemcpy(raw.data(), t.raw(), raw.size(), cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; i++) {
    switch (t.dtype) {
      case DType::f32: std::memcpy(&f[i], &raw[4 * i], 4); break;
      case DType::f16: {
        uint16_t b;
        std::memcpy(&b, &raw[2 * i], 2);
        f[i] = ignis::f16_bits_to_f32(b);
        break;
      }
      case DType::bf16: {
        uint16_t b;
        std::memcpy(&b, &raw[2 * i], 2);
        f[i] = ignis::bits_to_f32(uint32_t(b) << 16);
        break;
      }
      case DType::i8: f[i] = float(int8_t(raw[i])); break;
      case DType::i32: {
        int32_t v;
        std::memcpy(&v, &raw[4 * i], 4);
        f[i] = float(v);
        break;
      }
      default: break;
    }
  }
  return f;
}

// ---- checks ---------------------------------------------------------------------------------------

// Relative L2 error of the sampled outputs, ||got - ref|| / ||ref||; a NaN (the poison) fails.
double tolerance(DType dt) { return dt == DType::bf16 ? 1e-2 : 2e-3; }  // f32 allows TF32

void put_check(Row& r, const std::vector<double>& got, const std::vector<double>& ref, double tol) {
  double num = 0, den = 0;
  bool finite = true;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) finite = false;
    const double d = got[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  const double err = std::sqrt(num / std::max(den, 1e-300));
  const bool ok = finite && err <= tol;
  r.str("check", ok ? "ok" : "FAIL").num("err", finite ? err : std::numeric_limits<double>::infinity());
  r.num("tol", tol).num("checked", double(got.size()));
  if (!finite) r.str("check_note", "non-finite outputs (NaN poison not overwritten, or a NaN computed)");
}

// ---- rows -----------------------------------------------------------------------------------------

void run_copy(Bench& B, Row& r) {
  const size_t n = size_t(1) << 30;  // 1 GiB read + 1 GiB written
  Tensor src = ignis::empty({int64_t(n)}, DType::i8, kGpu), dst = ignis::empty({int64_t(n)}, DType::i8, kGpu);
  IGNIS_CUDA_CHECK(cudaMemsetAsync(src.raw(), 0x5a, n, B.stream));
  IGNIS_CUDA_CHECK(cudaMemsetAsync(dst.raw(), 0, n, B.stream));
  const Timing t = time_launches(B, 1, [&](int) {
    IGNIS_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), n, cudaMemcpyDeviceToDevice, B.stream));
  });
  put_timing(r, t);
  r.num("bytes", 2.0 * double(n)).str("check", "skipped");
}

// out [M, N] = a [M, K] @ b [K, N] (or b [N, K] with transpose_b).
void run_matmul(Bench& B, Row& r, DType dt, int64_t M, int64_t N, int64_t K, bool transpose_b) {
  IGNIS_REQUIRE(matmul, "native/cuda/matmul.cu");
  const double es = double(ignis::dtype_size(dt));
  const int copies = B.copies_for(double(M * K + K * N + M * N) * es);
  struct Set {
    Tensor a, b, out;
  };
  std::vector<Set> sets;
  for (int c = 0; c < copies; c++) {
    Set s;
    s.a = randn(B, {M, K}, dt, 100 + 2 * uint64_t(c));
    s.b = randn(B, transpose_b ? Shape{N, K} : Shape{K, N}, dt, 101 + 2 * uint64_t(c));
    s.out = ignis::empty({M, N}, dt, kGpu);
    sets.push_back(s);
  }
  ignis::MatmulParams p;
  p.transpose_b = transpose_b;
  {
    const Set& s = sets[0];
    poison(B, s.out);
    ic::matmul(B.L, s.out, s.a, s.b, nullptr, p);
    B.sync();
    const std::vector<float> a = to_host(s.a), b = to_host(s.b), o = to_host(s.out);
    std::vector<std::pair<int64_t, int64_t>> at = {{0, 0}, {M - 1, N - 1}, {0, N - 1}, {M - 1, 0}};
    if (M * N <= 8192) {  // a GEMV: every output
      at.clear();
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) at.push_back({i, j});
    }
    std::mt19937_64 rng(7);
    while (at.size() < 64) at.push_back({int64_t(rng() % uint64_t(M)), int64_t(rng() % uint64_t(N))});
    std::vector<double> got, ref;
    for (auto [i, j] : at) {
      double acc = 0;
      for (int64_t k = 0; k < K; k++)
        acc += double(a[size_t(i * K + k)]) * double(b[size_t(transpose_b ? j * K + k : k * N + j)]);
      ref.push_back(acc);
      got.push_back(o[size_t(i * N + j)]);
    }
    put_check(r, got, ref, tolerance(dt));
  }
  const Timing t = time_launches(B, copies, [&](int c) {
    ic::matmul(B.L, sets[size_t(c)].out, sets[size_t(c)].a, sets[size_t(c)].b, nullptr, p);
  });
  put_timing(r, t);
  r.num("flops", 2.0 * double(M) * double(N) * double(K));
  r.num("bytes", double(transpose_b ? N * K : K * N) * es + double(M * K + M * N) * es);
}

// out [M, N] bf16 = x [M, K] bf16 @ dequant(q [N, K] i8, scales [N, K / group] f32)^T.
void run_gemv_int8(Bench& B, Row& r, int64_t M, int64_t N, int64_t K, int64_t group) {
  IGNIS_REQUIRE(quantize, "native/cuda/quantize.cu");
  IGNIS_REQUIRE(matmul_q, "native/cuda/matmul_q.cu");
  const double bytes = double(N * K) + double(N * (K / group)) * 4 + double(M * K) * 2 + double(M * N) * 2;
  const int copies = B.copies_for(bytes);
  struct Set {
    Tensor x, q, scales, out;
  };
  std::vector<Set> sets;
  {
    const Tensor w = randn(B, {N, K}, DType::bf16, 200);
    for (int c = 0; c < copies; c++) {
      Set s;
      s.x = randn(B, {M, K}, DType::bf16, 201 + uint64_t(c));
      s.q = ignis::empty({N, K}, DType::i8, kGpu);
      s.scales = ignis::empty({N, K / group}, DType::f32, kGpu);
      s.out = ignis::empty({M, N}, DType::bf16, kGpu);
      ic::quantize(B.L, s.q, s.scales, w, group);
      sets.push_back(s);
    }
    B.sync();
  }
  {
    const Set& s = sets[0];
    poison(B, s.out);
    ic::matmul_q(B.L, s.out, s.x, s.q, s.scales, group, nullptr, ignis::Activation::none);
    B.sync();
    const std::vector<float> x = to_host(s.x), q = to_host(s.q), sc = to_host(s.scales), o = to_host(s.out);
    std::vector<double> got, ref;
    for (int64_t i : {int64_t(0), M - 1}) {
      if (i == M - 1 && M == 1) break;
      for (int64_t j = 0; j < N; j++) {
        double acc = 0;
        for (int64_t k = 0; k < K; k++)
          acc += double(x[size_t(i * K + k)]) * double(q[size_t(j * K + k)]) *
                 double(sc[size_t(j * (K / group) + k / group)]);
        ref.push_back(acc);
        got.push_back(o[size_t(i * N + j)]);
      }
    }
    put_check(r, got, ref, tolerance(DType::bf16));
  }
  const Timing t = time_launches(B, copies, [&](int c) {
    const Set& s = sets[size_t(c)];
    ic::matmul_q(B.L, s.out, s.x, s.q, s.scales, group, nullptr, ignis::Activation::none);
  });
  put_timing(r, t);
  r.num("flops", 2.0 * double(M) * double(N) * double(K)).num("bytes", bytes);
}

// One row of attention in float64: out [D] for query (b, i, h) of q [Bq, Sq, Hq, D] against
// k, v [Bq, Skv, Hk, D] (rows [0, kv_len)); query head h uses kv head h / (Hq / Hk).
void attention_ref(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                   int64_t Sq, int64_t Hq, int64_t Skv, int64_t Hk, int64_t D, int64_t b, int64_t i, int64_t h,
                   const ignis::AttentionParams& p, std::vector<double>& out) {
  const int64_t hk = h / (Hq / Hk);
  const int64_t last = p.causal ? std::min(p.kv_len - 1, p.q_pos0 + i) : p.kv_len - 1;
  out.assign(size_t(D), 0.0);
  if (last < 0) return;
  const float* qr = &q[size_t(((b * Sq + i) * Hq + h) * D)];
  std::vector<double> s(size_t(last + 1));
  double mx = -1e300;
  for (int64_t j = 0; j <= last; j++) {
    const float* kr = &k[size_t(((b * Skv + j) * Hk + hk) * D)];
    double dot = 0;
    for (int64_t d = 0; d < D; d++) dot += double(qr[d]) * double(kr[d]);
    s[size_t(j)] = double(p.scale) * dot;  // S = scale q k^T
    mx = std::max(mx, s[size_t(j)]);
  }
  double sum = 0;
  for (int64_t j = 0; j <= last; j++) {
    const double e = std::exp(s[size_t(j)] - mx);  // P = softmax(S)
    sum += e;
    const float* vr = &v[size_t(((b * Skv + j) * Hk + hk) * D)];
    for (int64_t d = 0; d < D; d++) out[size_t(d)] += e * double(vr[d]);  // O = P V
  }
  for (auto& o : out) o /= sum;
}

// q, out [Bq, Sq, Hq, D]; k, v [Bq, Skv, Hk, D]. rows: the (b, i, h) to check; empty: all of them.
void run_attention(Bench& B, Row& r, int64_t Bq, int64_t Sq, int64_t Hq, int64_t Skv, int64_t Hk, int64_t D,
                   bool causal, int64_t q_pos0, std::vector<std::array<int64_t, 3>> rows, bool decode) {
  IGNIS_REQUIRE(attention, "native/cuda/attention.cu");
  const DType dt = DType::bf16;
  const double q_bytes = double(Bq * Sq * Hq * D) * 2, kv_bytes = 2.0 * double(Bq * Skv * Hk * D) * 2;
  const int copies = B.copies_for(2 * q_bytes + kv_bytes);
  struct Set {
    Tensor q, k, v, out;
  };
  std::vector<Set> sets;
  for (int c = 0; c < copies; c++) {
    Set s;
    s.q = randn(B, {Bq, Sq, Hq, D}, dt, 300 + 3 * uint64_t(c));
    s.k = randn(B, {Bq, Skv, Hk, D}, dt, 301 + 3 * uint64_t(c));
    s.v = randn(B, {Bq, Skv, Hk, D}, dt, 302 + 3 * uint64_t(c));
    s.out = ignis::empty({Bq, Sq, Hq, D}, dt, kGpu);
    sets.push_back(s);
  }
  ignis::AttentionParams p;
  p.causal = causal;
  p.scale = float(1.0 / std::sqrt(double(D)));
  p.kv_len = Skv;
  p.q_pos0 = q_pos0;
  {
    const Set& s = sets[0];
    poison(B, s.out);
    ic::attention(B.L, s.out, s.q, s.k, s.v, p);
    B.sync();
    const std::vector<float> q = to_host(s.q), k = to_host(s.k), v = to_host(s.v), o = to_host(s.out);
    if (rows.empty())
      for (int64_t b = 0; b < Bq; b++)
        for (int64_t i = 0; i < Sq; i++)
          for (int64_t h = 0; h < Hq; h++) rows.push_back({b, i, h});
    std::vector<double> got, ref, row;
    for (auto [b, i, h] : rows) {
      attention_ref(q, k, v, Sq, Hq, Skv, Hk, D, b, i, h, p, row);
      for (int64_t d = 0; d < D; d++) {
        ref.push_back(row[size_t(d)]);
        got.push_back(o[size_t(((b * Sq + i) * Hq + h) * D + d)]);
      }
    }
    put_check(r, got, ref, tolerance(dt));
  }
  const Timing t = time_launches(B, copies, [&](int c) {
    const Set& s = sets[size_t(c)];
    ic::attention(B.L, s.out, s.q, s.k, s.v, p);
  });
  put_timing(r, t);
  // 4 * B * H * Sq * Skv * D (two matmuls), half of it under a causal mask for prefill.
  const double flops = 4.0 * double(Bq * Hq) * double(Sq) * double(Skv) * double(D);
  r.num("flops", decode || !causal ? flops : flops / 2);
  r.num("bytes", decode ? kv_bytes : 2 * q_bytes + kv_bytes);
  if (decode) r.str("bytes_note", "K + V read once");
}

void run_rmsnorm(Bench& B, Row& r, int64_t R, int64_t D) {
  IGNIS_REQUIRE(rmsnorm, "native/cuda/norm.cu");
  const float eps = 1e-5f;
  const int copies = B.copies_for(double(R * D) * 4);
  const Tensor w = randn(B, {D}, DType::bf16, 400);
  std::vector<std::pair<Tensor, Tensor>> sets;  // (x, out)
  for (int c = 0; c < copies; c++)
    sets.push_back({randn(B, {R, D}, DType::bf16, 401 + uint64_t(c)), ignis::empty({R, D}, DType::bf16, kGpu)});
  {
    poison(B, sets[0].second);
    ic::rmsnorm(B.L, sets[0].second, sets[0].first, w, eps);
    B.sync();
    const std::vector<float> x = to_host(sets[0].first), o = to_host(sets[0].second), g = to_host(w);
    std::vector<double> got, ref;
    for (int64_t i : {int64_t(0), int64_t(1), R / 2, R / 3 + 5, R - 2, R - 1}) {
      double ss = 0;
      for (int64_t d = 0; d < D; d++) ss += double(x[size_t(i * D + d)]) * double(x[size_t(i * D + d)]);
      const double inv = 1.0 / std::sqrt(ss / double(D) + double(eps));  // 1 / rms(x)
      for (int64_t d = 0; d < D; d++) {
        ref.push_back(double(x[size_t(i * D + d)]) * inv * double(g[size_t(d)]));
        got.push_back(o[size_t(i * D + d)]);
      }
    }
    put_check(r, got, ref, tolerance(DType::bf16));
  }
  const Timing t = time_launches(B, copies, [&](int c) {
    ic::rmsnorm(B.L, sets[size_t(c)].second, sets[size_t(c)].first, w, eps);
  });
  put_timing(r, t);
  r.num("bytes", double(R * D) * 4 + double(D) * 2);
}

// out [T, D] = table [V, D] [ids [T]]; each input set draws its own ids, so the rows read differ.
void run_embedding(Bench& B, Row& r, int64_t V, int64_t D, int64_t T) {
  IGNIS_REQUIRE(embedding, "native/cuda/embedding.cu");
  const int copies = B.copies_for(double(T * D) * 4);
  const Tensor table = randn(B, {V, D}, DType::bf16, 500);
  std::vector<std::pair<Tensor, Tensor>> sets;  // (ids, out)
  std::vector<int32_t> ids0;
  std::mt19937 rng(11);
  for (int c = 0; c < copies; c++) {
    std::vector<int32_t> ids(static_cast<size_t>(T));
    for (auto& id : ids) id = int32_t(rng() % uint32_t(V));
    Tensor t = ignis::empty({T}, DType::i32, kGpu);
    upload(t, ids.data());
    if (c == 0) ids0 = ids;
    sets.push_back({t, ignis::empty({T, D}, DType::bf16, kGpu)});
  }
  {
    poison(B, sets[0].second);
    ic::embedding(B.L, sets[0].second, sets[0].first, table);
    B.sync();
    const std::vector<float> o = to_host(sets[0].second);
    std::vector<uint16_t> row(static_cast<size_t>(D));
    std::vector<double> got, ref;
    for (int64_t i = 0; i < T; i += std::max<int64_t>(1, T / 32)) {
      const auto* src = static_cast<const char*>(table.raw()) + size_t(ids0[size_t(i)]) * size_t(D) * 2;
      IGNIS_CUDA_CHECK(cudaMemcpy(row.data(), src, size_t(D) * 2, cudaMemcpyDeviceToHost));
      for (int64_t d = 0; d < D; d++) {
        ref.push_back(ignis::bits_to_f32(uint32_t(row[size_t(d)]) << 16));
        got.push_back(o[size_t(i * D + d)]);
      }
    }
    put_check(r, got, ref, 0.0);
  }
  const Timing t = time_launches(B, copies, [&](int c) {
    ic::embedding(B.L, sets[size_t(c)].second, sets[size_t(c)].first, table);
  });
  put_timing(r, t);
  r.num("bytes", double(T * D) * 4 + double(T) * 4);
}

// Rotate-half rope on x [Bq, S, H, D] at positions [0, S).
void run_rope(Bench& B, Row& r, int64_t Bq, int64_t S, int64_t H, int64_t D) {
  IGNIS_REQUIRE(rope, "native/cuda/rope.cu");
  const float theta = 10000.f;
  const int64_t n = Bq * S * H * D, half = D / 2;
  const int copies = B.copies_for(double(n) * 4);
  std::vector<std::pair<Tensor, Tensor>> sets;  // (x, out)
  for (int c = 0; c < copies; c++)
    sets.push_back({randn(B, {Bq, S, H, D}, DType::bf16, 600 + uint64_t(c)), ignis::empty({Bq, S, H, D}, DType::bf16, kGpu)});
  {
    poison(B, sets[0].second);
    ic::rope(B.L, sets[0].second, sets[0].first, 0, theta, nullptr);
    B.sync();
    const std::vector<float> x = to_host(sets[0].first), o = to_host(sets[0].second);
    std::vector<double> got, ref;
    for (int64_t s : {int64_t(0), int64_t(1), int64_t(100), S / 2 + 7, S - 1})
      for (int64_t h : {int64_t(0), H / 2 + 1, H - 1}) {
        const size_t off = size_t(((Bq - 1) * S + s) * H + h) * size_t(D);
        for (int64_t i = 0; i < half; i++) {
          const double a = double(s) * std::pow(double(theta), -2.0 * double(i) / double(D));
          const double x1 = x[off + size_t(i)], x2 = x[off + size_t(i + half)];
          ref.push_back(x1 * std::cos(a) - x2 * std::sin(a));
          got.push_back(o[off + size_t(i)]);
          ref.push_back(x2 * std::cos(a) + x1 * std::sin(a));
          got.push_back(o[off + size_t(i + half)]);
        }
      }
    put_check(r, got, ref, tolerance(DType::bf16));
  }
  const Timing t = time_launches(B, copies, [&](int c) {
    ic::rope(B.L, sets[size_t(c)].second, sets[size_t(c)].first, 0, theta, nullptr);
  });
  put_timing(r, t);
  r.num("bytes", double(n) * 4);
}

// ---- the rows -------------------------------------------------------------------------------------

struct Case {
  const char* id;
  const char* name;
  const char* shape;
  const char* kind;  // "compute" (rated in TFLOP/s) or "memory" (GB/s)
  std::function<void(Bench&, Row&)> run;
};

std::vector<Case> cases() {
  using std::array;
  std::vector<Case> c;
  c.push_back({"copy", "copy bandwidth (d2d memcpy)", "1 GiB", "memory", [](Bench& B, Row& r) { run_copy(B, r); }});
  auto mm = [&](const char* id, const char* name, const char* shape, DType dt, int64_t n) {
    c.push_back({id, name, shape, "compute", [=](Bench& B, Row& r) { run_matmul(B, r, dt, n, n, n, false); }});
  };
  mm("matmul_bf16_2048", "matmul bf16", "2048^3", DType::bf16, 2048);
  mm("matmul_bf16_4096", "matmul bf16", "4096^3", DType::bf16, 4096);
  mm("matmul_bf16_8192", "matmul bf16", "8192^3", DType::bf16, 8192);
  mm("matmul_f16_4096", "matmul f16", "4096^3", DType::f16, 4096);
  mm("matmul_f32_4096", "matmul f32", "4096^3", DType::f32, 4096);
  c.push_back({"gemv_int8_m1", "gemv int8 g128 (matmul_q)", "1x8192x8192", "memory",
               [](Bench& B, Row& r) { run_gemv_int8(B, r, 1, 8192, 8192, 128); }});
  c.push_back({"gemv_int8_m8", "gemv int8 g128 (matmul_q)", "8x8192x8192", "memory",
               [](Bench& B, Row& r) { run_gemv_int8(B, r, 8, 8192, 8192, 128); }});
  c.push_back({"gemv_bf16_m1", "gemv bf16 (x @ W^T)", "1x8192x8192", "memory",
               [](Bench& B, Row& r) { run_matmul(B, r, DType::bf16, 1, 8192, 8192, true); }});
  // Prefill: B 4, S 4096, 32 heads, D 128; rows checked: first, last and a few between.
  const std::vector<array<int64_t, 3>> prefill_rows = {
      {0, 0, 0}, {0, 1, 1}, {0, 64, 7}, {1, 1000, 20}, {2, 2048 + 17, 5}, {3, 4095, 0}, {3, 4095, 31}, {1, 127, 30}};
  c.push_back({"attn_prefill_causal", "attention prefill causal bf16", "4x4096x32x128", "compute",
               [=](Bench& B, Row& r) { run_attention(B, r, 4, 4096, 32, 4096, 32, 128, true, 0, prefill_rows, false); }});
  c.push_back({"attn_prefill", "attention prefill bf16", "4x4096x32x128", "compute",
               [=](Bench& B, Row& r) { run_attention(B, r, 4, 4096, 32, 4096, 32, 128, false, 0, prefill_rows, false); }});
  // Decode: one query at position 4095 over a 4096-token cache, 32 query / 8 kv heads.
  c.push_back({"attn_decode_b1", "attention decode bf16 (GQA 32/8)", "B1, 4096 keys, D128", "memory",
               [](Bench& B, Row& r) { run_attention(B, r, 1, 1, 32, 4096, 8, 128, true, 4095, {}, true); }});
  c.push_back({"attn_decode_b8", "attention decode bf16 (GQA 32/8)", "B8, 4096 keys, D128", "memory",
               [](Bench& B, Row& r) { run_attention(B, r, 8, 1, 32, 4096, 8, 128, true, 4095, {}, true); }});
  c.push_back({"rmsnorm", "rmsnorm bf16", "4096x4096", "memory", [](Bench& B, Row& r) { run_rmsnorm(B, r, 4096, 4096); }});
  c.push_back({"embedding", "embedding bf16", "4096 ids, [32000, 4096]", "memory",
               [](Bench& B, Row& r) { run_embedding(B, r, 32000, 4096, 4096); }});
  c.push_back({"rope", "rope bf16", "1x4096x32x128", "memory", [](Bench& B, Row& r) { run_rope(B, r, 1, 4096, 32, 128); }});
  return c;
}

void print_meta(const cudaDeviceProp& prop) {
  Row r("meta", prop.name, "", "meta");
  r.str("gpu", prop.name).num("cc", prop.major * 10 + prop.minor).num("sm_count", prop.multiProcessorCount);
  r.num("l2_bytes", prop.l2CacheSize).num("memory_bytes", double(prop.totalGlobalMem));
  r.str("randn", linked(&ic::randn) ? "ignis::cuda::randn" : "bench fallback (fill.cu missing)");
  r.print();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<Case> all = cases();
  std::vector<std::string> want;
  bool meta = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--list") {
      for (const Case& c : all) std::printf("%s\n", c.id);
      return 0;
    }
    if (a == "--meta") {
      meta = true;
      continue;
    }
    if (std::none_of(all.begin(), all.end(), [&](const Case& c) { return a == c.id; })) {
      std::fprintf(stderr, "unknown row '%s' (--list prints the rows)\n", a.c_str());
      return 2;
    }
    want.push_back(a);
  }
  if (want.empty() && !meta)
    for (const Case& c : all) want.push_back(c.id);

  static BenchBackend backend;
  ignis::register_backend(&backend);
  Bench B;
  std::unique_ptr<Gate> gate;
  std::string setup_error;
  try {
    IGNIS_CUDA_CHECK(cudaSetDevice(0));
    IGNIS_CUDA_CHECK(cudaGetDeviceProperties(&B.prop, 0));
    B.L = ic::launch_for(0, &B.keep);
    B.stream = static_cast<cudaStream_t>(B.L.stream);
    gate = std::make_unique<Gate>();
    B.gate = gate.get();
    if (const char* ms = std::getenv("IGNIS_BENCH_MS")) B.budget_ms = std::max(1.0, std::atof(ms));
  } catch (const std::exception& e) {
    setup_error = std::string("setup: ") + e.what();
  }
  if (meta && setup_error.empty()) print_meta(B.prop);

  int failed = 0;
  for (const std::string& id : want) {
    const Case& c = *std::find_if(all.begin(), all.end(), [&](const Case& k) { return id == k.id; });
    Row r(c.id, c.name, c.shape, c.kind);
    if (!setup_error.empty()) {
      r.str("error", setup_error).print();
      failed++;
      continue;
    }
    try {
      c.run(B, r);
    } catch (const std::exception& e) {
      r.str("error", e.what());
      failed++;
      B.gate->open();  // a launch that threw mid-chunk leaves the gate closed
      try {  // a fault is reported (and cleared) by the synchronize; drop the failed launch's scratch
        B.sync();
      } catch (const std::exception&) {
      }
    }
    r.print();
    try {
      B.keep.clear();
      ic::empty_cache();
    } catch (const std::exception&) {
    }
  }
  return failed ? 1 : 0;
}
