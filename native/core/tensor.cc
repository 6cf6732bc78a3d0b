// Storage allocation (64-byte aligned host memory; CUDA memory through the CUDA runtime glue)
// and the small shape helpers.
#include "tensor.h"

#include <cstdlib>
#include <new>

#ifdef IGNIS_WITH_CUDA
#include "../cuda/runtime.h"
#endif

namespace ignis {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

static void* host_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
#if defined(_WIN32)
  return _aligned_malloc(rounded, 64);
#else
  void* p = nullptr;
  return posix_memalign(&p, 64, rounded) == 0 ? p : nullptr;
#endif
}

static void host_free(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

std::shared_ptr<Storage> Storage::allocate(Device device, size_t bytes) {
  void* p = nullptr;
  if (device.kind == Device::CPU) {
    p = host_alloc(bytes);
    if (!p)
      fail(ErrorCode::OOM, "out of host memory allocating " + std::to_string(bytes) + " bytes");
  } else {
#ifdef IGNIS_WITH_CUDA
    p = cuda::device_alloc(device.index, bytes);
#else
    fail(ErrorCode::Device, "this build of ignis has no CUDA support");
#endif
  }
  return std::shared_ptr<Storage>(new Storage(device, p, bytes));
}

Storage::~Storage() {
  if (device_.kind == Device::CPU) {
    host_free(data_);
  } else {
#ifdef IGNIS_WITH_CUDA
    cuda::device_free(device_.index, data_, bytes_);
#endif
  }
}

Tensor empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape = shape;
  t.dtype = dtype;
  t.storage = Storage::allocate(device, size_t(shape_numel(shape)) * dtype_size(dtype));
  return t;
}

}  // namespace ignis
