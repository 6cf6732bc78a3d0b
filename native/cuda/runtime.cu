// The CUDA runtime of ignis: device discovery, and per device one non-blocking stream (the
// device's queue issues every kernel there), a caching allocator, pinned staging for uploads,
// the host-mapped fault record, and graph capture. Nothing here can take the process down:
// every CUDA call is checked and a failure becomes an ignis::Error.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <utility>
#include <string>
#include <unordered_map>
#include <vector>

#include "../core/error.h"
#include "common.cuh"
#include "runtime.h"

namespace ignis::cuda {

static Availability do_probe() {
  Availability a;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it so later calls start clean
    a.reason = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver
                   ? "no usable NVIDIA driver or GPU was found (" + describe(e) + ")"
                   : "the CUDA driver could not be initialized (" + describe(e) + ")";
    return a;
  }
  for (int i = 0; i < count; i++) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    a.devices.push_back({prop.name, prop.major, prop.minor, int64_t(prop.totalGlobalMem), prop.multiProcessorCount});
  }
  if (a.devices.empty()) {
    a.reason = "the driver reports no CUDA devices";
    return a;
  }
  for (const DeviceInfo& d : a.devices)
    if (d.major < 8) {
      a.reason = "cuda device " + d.name + " has compute capability " + std::to_string(d.major) + "." +
                 std::to_string(d.minor) + "; ignis's CUDA kernels need 8.0 (Ampere) or newer";
      return a;
    }
  a.usable = true;
  return a;
}

const Availability& probe() {
  static std::once_flag once;
  static Availability a;
  std::call_once(once, [] { a = do_probe(); });
  return a;
}

static void set_device(int device) { IGNIS_CUDA_CHECK(cudaSetDevice(device)); }

// --- per-device state ---------------------------------------------------------------------------

namespace {

// Bins: 512-byte steps up to 1 MiB, then four steps per power of two (at most 25% over).
size_t bin_of(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);
  size_t p = size_t(1) << (63 - __builtin_clzll(bytes));
  const size_t step = p / 4;
  return (bytes + step - 1) / step * step;
}

struct Staging {
  void* host = nullptr;  // pinned
  cudaEvent_t done = nullptr;  // recorded after the upload that reads it
  bool used = false;
};

constexpr size_t kStagingChunk = size_t(16) << 20;
constexpr int kStagingChunks = 4;

struct DeviceState {
  int index = 0;
  cudaStream_t stream = nullptr;
  // Held while a thread issues work to the stream, waits for it, or records a CUDA graph from it:
  // every Runtime (a worker_thread each) shares the device's stream, so without it another
  // runtime's kernels would land inside this one's capture, and a synchronization during a
  // capture would invalidate it. Recursive: a task that holds it records, allocates and syncs.
  std::recursive_mutex stream_mu;
  Fault* fault_host = nullptr;  // mapped, pinned
  Fault* fault_dev = nullptr;
  KernelError pending_fault;    // a fault found by a synchronization, until the next call takes it
  int sm_count = 0, cc = 0;
  size_t smem_optin = 0;

  std::mutex mem_mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // bin -> cached blocks
  MemoryStats stats;

  std::mutex staging_mu;
  std::array<Staging, kStagingChunks> staging;
  int next_staging = 0;
};

std::mutex g_devices_mu;
// By index, made on first use; never destroyed, so a tensor freed during process exit still
// finds its device's allocator.
std::vector<std::unique_ptr<DeviceState>>& g_devices = *new std::vector<std::unique_ptr<DeviceState>>();

DeviceState& state(int device) {
  const Availability& a = probe();
  if (!a.usable) fail(ErrorCode::Device, "cuda:" + std::to_string(device) + " is not available: " + a.reason);
  if (device < 0 || device >= int(a.devices.size()))
    fail(ErrorCode::Device, "cuda:" + std::to_string(device) + " does not exist: " +
                                std::to_string(a.devices.size()) + " CUDA device(s) found");
  std::lock_guard<std::mutex> lock(g_devices_mu);
  if (g_devices.empty()) g_devices.resize(a.devices.size());
  std::unique_ptr<DeviceState>& s = g_devices[size_t(device)];
  if (!s) {
    auto d = std::make_unique<DeviceState>();
    d->index = device;
    set_device(device);
    IGNIS_CUDA_CHECK(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking));
    IGNIS_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&d->fault_host), sizeof(Fault), cudaHostAllocMapped));
    std::memset(d->fault_host, 0, sizeof(Fault));
    IGNIS_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&d->fault_dev), d->fault_host, 0));
    int v = 0;
    IGNIS_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device));
    d->sm_count = v;
    int major = 0, minor = 0;
    IGNIS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    IGNIS_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    d->cc = 10 * major + minor;
    IGNIS_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    d->smem_optin = size_t(v);
    s = std::move(d);
  }
  return *s;
}

// The fault a kernel recorded, as the error the CPU kernel would have thrown (and cleared).
KernelError take_fault(DeviceState& d) {
  Fault f = *d.fault_host;  // read after a stream synchronization
  if (f.code <= 0) return nullptr;
  std::memset(d.fault_host, 0, sizeof(Fault));
  const ErrorCode code = ErrorCode(f.code - 1);
  std::string msg = "a CUDA kernel found bad data";
  switch (FaultOp(f.op)) {
    case FaultOp::embedding:
      msg = "embedding: id " + std::to_string(f.value) + " at flat position " + std::to_string(f.index) +
            " is outside the table's " + std::to_string(f.limit) + " rows";  // as the CPU says it
      break;
    case FaultOp::none:
    case FaultOp::Count: break;
  }
  return std::make_shared<const Error>(code, msg);
}

}  // namespace

// --- memory --------------------------------------------------------------------------------------

static void release_cached(DeviceState& d) {  // with mem_mu held
  for (auto& [bin, blocks] : d.free_blocks) {
    for (void* p : blocks) {
      cudaFree(p);
      d.stats.reserved -= int64_t(bin);
    }
    blocks.clear();
  }
}

void* device_alloc(int device, size_t bytes) {
  DeviceState& d = state(device);
  const size_t bin = bin_of(bytes);
  std::lock_guard<std::mutex> lock(d.mem_mu);
  auto it = d.free_blocks.find(bin);
  void* p = nullptr;
  if (it != d.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    set_device(device);
    cudaError_t e = cudaMalloc(&p, bin);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // an allocation failure is not sticky
      // The retry waits for the stream (cached blocks may still be in use) and frees them: not
      // while the stream records a graph, where both would invalidate the capture.
      cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
      IGNIS_CUDA_CHECK(cudaStreamIsCapturing(d.stream, &capturing));
      if (capturing == cudaStreamCaptureStatusNone) {
        IGNIS_CUDA_CHECK(cudaStreamSynchronize(d.stream));
        release_cached(d);
        e = cudaMalloc(&p, bin);
      }
    }
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail(ErrorCode::OOM, "out of memory on cuda:" + std::to_string(device) + " allocating " + std::to_string(bytes) +
                               " bytes (" + std::to_string(free_b) + " of " + std::to_string(total_b) + " free)");
    }
    if (e != cudaSuccess) fail(ErrorCode::Cuda, "cudaMalloc(" + std::to_string(bin) + "): " + describe(e));
    d.stats.reserved += int64_t(bin);
  }
  d.stats.allocated += int64_t(bin);
  d.stats.peak = std::max(d.stats.peak, d.stats.allocated);
  return p;
}

void device_free(int device, void* p, size_t bytes) {
  if (!p) return;
  DeviceState& d = state(device);
  const size_t bin = bin_of(bytes);
  std::lock_guard<std::mutex> lock(d.mem_mu);
  d.free_blocks[bin].push_back(p);
  d.stats.allocated -= int64_t(bin);
}

MemoryStats memory(int device) {
  DeviceState& d = state(device);
  std::lock_guard<std::mutex> lock(d.mem_mu);
  return d.stats;
}

void empty_cache() {
  std::vector<DeviceState*> ds;
  {
    std::lock_guard<std::mutex> lock(g_devices_mu);
    for (auto& d : g_devices)
      if (d) ds.push_back(d.get());
  }
  for (DeviceState* d : ds) {
    // cudaFree waits for the device (a cached block may still be read by queued kernels): not
    // during another thread's capture.
    std::lock_guard<std::recursive_mutex> stream(d->stream_mu);
    std::lock_guard<std::mutex> lock(d->mem_mu);
    set_device(d->index);
    release_cached(*d);
  }
}

// --- the stream ----------------------------------------------------------------------------------

Launch launch_for(int device, std::vector<std::shared_ptr<Storage>>* keep) {
  DeviceState& d = state(device);
  set_device(device);
  Launch L;
  L.device = device;
  L.stream = d.stream;
  L.fault = d.fault_dev;
  L.sm_count = d.sm_count;
  L.cc = d.cc;
  L.smem_optin = d.smem_optin;
  L.keep = keep;
  return L;
}

void* Launch::scratch(size_t bytes) const {
  if (!keep) fail(ErrorCode::Internal, "a CUDA kernel asked for scratch memory outside a task");
  Tensor t = empty({int64_t(std::max<size_t>(bytes, 1))}, DType::i8, Device{Device::CUDA, device});
  keep->push_back(t.storage);
  return t.raw();
}

std::unique_lock<std::recursive_mutex> lock_stream(int device) {
  return std::unique_lock<std::recursive_mutex>(state(device).stream_mu);
}

void upload(int device, void* dst, const void* src, size_t bytes) {
  DeviceState& d = state(device);
  set_device(device);
  // From the JS thread: not the stream lock (a worker may hold it through a long synchronize, and
  // the event loop must not wait for that); the staging lock, which a capture holds too, keeps
  // uploads out of recordings.
  std::lock_guard<std::mutex> lock(d.staging_mu);
  for (size_t off = 0; off < bytes; off += kStagingChunk) {
    const size_t n = std::min(kStagingChunk, bytes - off);
    Staging& s = d.staging[size_t(d.next_staging)];
    d.next_staging = (d.next_staging + 1) % kStagingChunks;
    if (!s.host) {
      IGNIS_CUDA_CHECK(cudaHostAlloc(&s.host, kStagingChunk, cudaHostAllocDefault));
      IGNIS_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    } else if (s.used) {
      // The chunk's last upload must have read it: only waits when several chunks of uploads
      // are still queued behind the stream's kernels (loading weights).
      IGNIS_CUDA_CHECK(cudaEventSynchronize(s.done));
    }
    std::memcpy(s.host, static_cast<const char*>(src) + off, n);
    IGNIS_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, s.host, n, cudaMemcpyHostToDevice, d.stream));
    IGNIS_CUDA_CHECK(cudaEventRecord(s.done, d.stream));
    s.used = true;
  }
}

void synchronize(int device) {
  DeviceState& d = state(device);
  set_device(device);
  std::lock_guard<std::recursive_mutex> stream(d.stream_mu);
  IGNIS_CUDA_CHECK(cudaStreamSynchronize(d.stream));
  if (KernelError f = take_fault(d)) d.pending_fault = f;
  if (d.pending_fault) throw Error(*d.pending_fault);
}

void download(int device, void* dst, const void* src, size_t bytes) {
  DeviceState& d = state(device);
  set_device(device);
  std::lock_guard<std::recursive_mutex> stream(d.stream_mu);
  if (bytes) IGNIS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, d.stream));
  synchronize(device);
}

void clear_fault(int device) {
  if (!probe().usable) return;
  state(device).pending_fault = nullptr;
}

void copy_async(const Launch& L, void* dst, const void* src, size_t bytes) {
  if (bytes) IGNIS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(L)));
}

// --- graphs --------------------------------------------------------------------------------------

std::unique_ptr<Graph> Graph::capture(int device, std::vector<std::shared_ptr<Storage>>* keep,
                                      const std::function<void(const Launch&)>& record) {
  DeviceState& d = state(device);
  // Nothing else may issue to or wait on the stream while it records: other runtimes' tasks
  // (worker_threads share the device's stream) and uploads from the JS thread.
  std::lock_guard<std::recursive_mutex> stream(d.stream_mu);
  std::lock_guard<std::mutex> staging(d.staging_mu);
  Launch L = launch_for(device, keep);
  // Relaxed: scratch allocations during the recording may call cudaMalloc.
  IGNIS_CUDA_CHECK(cudaStreamBeginCapture(d.stream, cudaStreamCaptureModeRelaxed));
  cudaGraph_t g = nullptr;
  try {
    record(L);
  } catch (...) {
    cudaStreamEndCapture(d.stream, &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();
    throw;
  }
  IGNIS_CUDA_CHECK(cudaStreamEndCapture(d.stream, &g));
  auto out = std::make_unique<Graph>();
  out->device_ = device;
  out->graph_ = g;
  cudaGraphExec_t exec = nullptr;
  IGNIS_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  out->exec_ = exec;
  return out;
}

void Graph::replay() {
  set_device(device_);
  IGNIS_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), state(device_).stream));
}

Graph::~Graph() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
}

}  // namespace ignis::cuda
