// The CUDA runtime of ignis: device discovery, and per device one non-blocking stream (the
// device's queue issues every kernel there), a caching allocator, pinned staging for uploads,
// the host-mapped fault records, graph capture, and the record of a lost device. Nothing here
// can take the process down: every CUDA call is checked and a failure becomes an ignis::Error.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <tuple>
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
    a.devices.push_back({prop.name, prop.major, prop.minor, int64_t(prop.totalGlobalMem), prop.multiProcessorCount, {}});
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

// --- a lost device -------------------------------------------------------------------------------

namespace {
std::mutex g_lost_mu;
std::vector<std::string>& g_lost = *new std::vector<std::string>();  // by device: why it is lost

// The errors after which the context cannot be used again (the CUDA runtime's "sticky" ones):
// every later call on it fails.
bool sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorECCUncorrectable:
    case cudaErrorNvlinkUncorrectable:
      return true;
    default:
      return false;
  }
}
}  // namespace

std::string lost(int device) {
  std::lock_guard<std::mutex> lock(g_lost_mu);
  return device >= 0 && size_t(device) < g_lost.size() ? g_lost[size_t(device)] : std::string();
}

void cuda_failed(cudaError_t e, const std::string& call) {
  const std::string msg = call + ": " + describe(e);
  if (!sticky(e)) fail(ErrorCode::Cuda, msg);
  int device = 0;
  cudaGetDevice(&device);
  {
    std::lock_guard<std::mutex> lock(g_lost_mu);
    if (g_lost.size() <= size_t(device)) g_lost.resize(size_t(device) + 1);
    if (g_lost[size_t(device)].empty()) g_lost[size_t(device)] = describe(e);
  }
  fail(ErrorCode::DeviceLost, "cuda:" + std::to_string(device) + " is lost (" + msg +
                                  "): the tensors and models on it are gone, and nothing more can run there");
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
  std::mutex fault_mu;
  std::vector<std::pair<Fault*, Fault*>> free_faults;  // fault records (host, device), mapped and pinned
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

}  // namespace

// --- fault records -------------------------------------------------------------------------------

FaultRecord::FaultRecord(int device) : device_(device) {
  DeviceState& d = state(device);
  std::lock_guard<std::mutex> lock(d.fault_mu);
  if (d.free_faults.empty()) {  // a block of them, kept for the process's life
    constexpr size_t kBlock = 64;
    Fault* host = nullptr;
    Fault* dev = nullptr;
    set_device(device);
    IGNIS_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&host), kBlock * sizeof(Fault), cudaHostAllocMapped));
    std::memset(static_cast<void*>(host), 0, kBlock * sizeof(Fault));
    IGNIS_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&dev), host, 0));
    for (size_t i = 0; i < kBlock; i++) d.free_faults.emplace_back(host + i, dev + i);
  }
  std::tie(host_, dev_) = d.free_faults.back();
  d.free_faults.pop_back();
}

FaultRecord::~FaultRecord() {
  DeviceState& d = state(device_);
  // A kernel queued with this record and not yet waited for (its task threw) could still write
  // it: wait for the stream before another task gets it (an error here was that task's).
  if (armed_) cudaStreamSynchronize(d.stream);
  std::memset(static_cast<void*>(host_), 0, sizeof(Fault));
  std::lock_guard<std::mutex> lock(d.fault_mu);
  d.free_faults.emplace_back(host_, dev_);
}

KernelError FaultRecord::take() {
  armed_ = false;
  const Fault f = *host_;  // read after a stream synchronization
  if (f.code <= 0) return nullptr;
  std::memset(static_cast<void*>(host_), 0, sizeof(Fault));
  const ErrorCode code = ErrorCode(f.code - 1);
  std::string msg = "a CUDA kernel found bad data";
  switch (FaultOp(f.op)) {
    case FaultOp::embedding:
      msg = "embedding: id " + std::to_string(f.value) + " at flat position " + std::to_string(f.index) +
            " is outside the table's " + std::to_string(f.limit) + " rows";  // as the CPU says it
      break;
    case FaultOp::kv_write:
      msg = "kv_write: slot " + std::to_string(f.value) + " of row " + std::to_string(f.index) + " is outside the pool's " +
            std::to_string(f.limit) + " slots (blocks x blockSize)";
      break;
    case FaultOp::paged_sequence:
      msg = "paged_attention: row " + std::to_string(f.index) + "'s sequence " + std::to_string(f.value) +
            " is outside the " + std::to_string(f.limit) + " block tables (-1: a padding row)";
      break;
    case FaultOp::paged_position:
      msg = "paged_attention: row " + std::to_string(f.index) + "'s position " + std::to_string(f.value) +
            " is outside [0, " + std::to_string(f.limit) + ")";
      break;
    case FaultOp::paged_block:
      msg = "paged_attention: row " + std::to_string(f.index) + " reads block " + std::to_string(f.value) +
            ", outside the pool's " + std::to_string(f.limit) + " blocks";
      break;
    case FaultOp::none:
    case FaultOp::Count: break;
  }
  return std::make_shared<const Error>(code, msg);
}

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
    if (e != cudaSuccess) cuda_failed(e, "cudaMalloc(" + std::to_string(bin) + ")");
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

Launch launch_for(int device, std::vector<std::shared_ptr<Storage>>* keep, FaultRecord& fault) {
  DeviceState& d = state(device);
  set_device(device);
  Launch L;
  L.device = device;
  L.stream = d.stream;
  L.fault = fault.dev();
  L.record = &fault;
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
}

void download(int device, void* dst, const void* src, size_t bytes) {
  DeviceState& d = state(device);
  set_device(device);
  std::lock_guard<std::recursive_mutex> stream(d.stream_mu);
  if (bytes) IGNIS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, d.stream));
  synchronize(device);
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
  auto fault = std::make_unique<FaultRecord>(device);
  Launch L = launch_for(device, keep, *fault);
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
  out->fault_ = std::move(fault);
  out->checks_ = L.fault_used;
  out->graph_ = g;
  cudaGraphExec_t exec = nullptr;
  IGNIS_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  out->exec_ = exec;
  return out;
}

void Graph::replay() {
  set_device(device_);
  IGNIS_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), state(device_).stream));
  if (checks_) {  // the replay's own bad data, found when its kernels are done
    fault_->arm();
    synchronize(device_);
    if (KernelError e = fault_->take()) throw Error(*e);
  }
}

Graph::~Graph() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  fault_.reset();  // back to the pool once nothing recorded can write it
}

}  // namespace ignis::cuda
