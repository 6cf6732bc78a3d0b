// CUDA runtime glue seen from host C++ (no CUDA headers here, so .cc files can include it):
// device discovery for info() and device memory for Storage.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ignis::cuda {

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;  // compute capability
  size_t memory_bytes = 0;
};

struct Availability {
  bool usable = false;        // ops may run on CUDA devices
  std::string reason;         // why not, when !usable
  std::vector<DeviceInfo> devices;
};

// Asks the driver once (cached): how many devices, what they are, and whether ignis can use them.
const Availability& probe();

void* device_alloc(int device, size_t bytes);   // throws E_OOM / E_CUDA
void device_free(int device, void* p, size_t bytes);

}  // namespace ignis::cuda
