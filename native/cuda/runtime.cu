// Device discovery through the static CUDA runtime. With no driver or no GPU the probe says
// why and ignis runs on the CPU; nothing here can take the process down.
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "../core/error.h"
#include "runtime.h"

namespace ignis::cuda {

static std::string describe(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

static Availability do_probe() {
  Availability a;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    a.reason = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver
                   ? "no usable NVIDIA driver or GPU was found (" + describe(e) + ")"
                   : "the CUDA driver could not be initialized (" + describe(e) + ")";
    return a;
  }
  for (int i = 0; i < count; i++) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    a.devices.push_back({prop.name, prop.major, prop.minor, size_t(prop.totalGlobalMem)});
  }
  if (a.devices.empty()) {
    a.reason = "the driver reports no CUDA devices";
    return a;
  }
  // The kernels of the CUDA backend land in a later release; until then CUDA devices are
  // listed but ops run on the CPU.
  a.reason = "found " + std::to_string(a.devices.size()) +
             " CUDA device(s), but this build's CUDA kernels are not implemented yet; ops run on the CPU";
  return a;
}

const Availability& probe() {
  static std::once_flag once;
  static Availability a;
  std::call_once(once, [] { a = do_probe(); });
  return a;
}

void* device_alloc(int device, size_t bytes) {
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) fail(ErrorCode::Cuda, "cudaSetDevice(" + std::to_string(device) + "): " + describe(e));
  void* p = nullptr;
  e = cudaMalloc(&p, bytes ? bytes : 1);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail(ErrorCode::OOM, "out of memory on cuda:" + std::to_string(device) + " allocating " +
                             std::to_string(bytes) + " bytes (" + std::to_string(free_b) + " free of " +
                             std::to_string(total_b) + ")");
  }
  if (e != cudaSuccess) fail(ErrorCode::Cuda, "cudaMalloc: " + describe(e));
  return p;
}

void device_free(int device, void* p, size_t) {
  if (cudaSetDevice(device) == cudaSuccess) cudaFree(p);
}

}  // namespace ignis::cuda
