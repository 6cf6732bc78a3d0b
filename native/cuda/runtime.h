// CUDA runtime glue seen from host C++ (no CUDA headers here, so .cc files can include it):
// device discovery, and per device one stream (the device's in-order queue), a caching
// allocator, pinned staging for host <-> device copies, the fault records kernels report bad
// data through, and the record of a lost device. Every CUDA call is checked; failures throw
// E_CUDA, E_OOM, E_DEVICE, or E_DEVICE_LOST (an error after which the context is unusable:
// the device is marked lost).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "kernels.h"

namespace ignis::cuda {

// The devices and whether ignis can use them (core/backend.h's BackendStatus).
using Availability = BackendStatus;

// Asks the driver once (cached): how many devices, what they are, and whether ignis can use
// them (compute capability 8.0 or newer: the kernels use mma.sync and cp.async).
const Availability& probe();

// --- memory: a caching allocator per device ------------------------------------------------------
// Sizes are rounded up into bins (512 B steps below 1 MiB, then quarter powers of two) and a
// freed block goes back to its bin for the next request of that bin. All work on a device is
// ordered on its one stream, so a block freed while queued kernels still use it is only
// reused by work queued after them. When cudaMalloc fails the cache is emptied and the
// allocation retried once; then E_OOM names the bytes asked and the bytes free.
void* device_alloc(int device, size_t bytes);
void device_free(int device, void* p, size_t bytes);
struct MemoryStats {
  int64_t allocated = 0;  // bytes in live blocks (as rounded)
  int64_t reserved = 0;   // bytes held from the driver: live + cached
  int64_t peak = 0;       // the most `allocated` has been
};
MemoryStats memory(int device);
// Returns every cached (free) block of every initialized device to the driver.
void empty_cache();

// Why the device's context is gone (the first sticky CUDA error it hit), or empty.
std::string lost(int device);

// --- fault records -------------------------------------------------------------------------------
// One task's (or one recorded graph's) record of the bad data its kernels find, taken from the
// device's pool of host-mapped records and returned there. Its own, so that an id out of range
// in one request's work fails that work and nothing queued beside it.
class FaultRecord {
 public:
  explicit FaultRecord(int device);
  ~FaultRecord();  // armed: waits for the stream first (a queued kernel may still write it)
  FaultRecord(const FaultRecord&) = delete;
  FaultRecord& operator=(const FaultRecord&) = delete;
  Fault* dev() const { return dev_; }  // the device pointer kernels write through
  // A kernel that writes it has been queued and not yet waited for.
  void arm() { armed_ = true; }
  // After a synchronization of the stream: what the kernels reported, as the error the CPU
  // kernel would have thrown, or null; the record is cleared and disarmed.
  KernelError take();

 private:
  int device_;
  Fault* host_ = nullptr;
  Fault* dev_ = nullptr;
  bool armed_ = false;
};

// --- the stream ----------------------------------------------------------------------------------
// The launch context of a device (its stream, the task's fault record, properties); scratch
// memory requested through it is appended to *keep.
Launch launch_for(int device, std::vector<std::shared_ptr<Storage>>* keep, FaultRecord& fault);
// The device's stream lock (see runtime.cu DeviceState::stream_mu): a task holds it while it
// issues its kernels, so no other runtime's work lands inside a capture; recursive.
std::unique_lock<std::recursive_mutex> lock_stream(int device);
// host -> device: copies src into pinned staging at once (the caller may reuse src when this
// returns) and enqueues the upload on the device's stream.
void upload(int device, void* dst, const void* src, size_t bytes);
// device -> host: enqueues the copy and waits for the stream (call from the device's worker,
// never from the JS thread). Throws the CUDA error the stream hit.
void download(int device, void* dst, const void* src, size_t bytes);
// Waits for everything queued on the device; throws the CUDA error the stream hit.
void synchronize(int device);
// device -> device on the stream (same device, or peer).
void copy_async(const Launch& L, void* dst, const void* src, size_t bytes);

// --- CUDA graphs ---------------------------------------------------------------------------------
// A captured sequence of launches on one device's stream, replayed as one launch. capture()
// records what record(L) enqueues (nothing runs while recording) and instantiates it. Uploads
// from other threads wait while a capture is recording, so they are not recorded into it. The
// graph has its own fault record (its kernels hold its address); a replay whose kernels can
// find bad data waits for them and throws what they found.
class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  static std::unique_ptr<Graph> capture(int device, std::vector<std::shared_ptr<Storage>>* keep,
                                        const std::function<void(const Launch&)>& record);
  void replay();

 private:
  int device_ = 0;
  std::unique_ptr<FaultRecord> fault_;
  bool checks_ = false;  // a recorded kernel can report bad data
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
};

}  // namespace ignis::cuda
