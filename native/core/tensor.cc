// Storage allocation (64-byte aligned host memory from the caching allocator in host_cache.h; CUDA memory through the CUDA runtime glue)
// and the small shape helpers.
#include "tensor.h"

#include "host_cache.h"

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

std::shared_ptr<Storage> Storage::allocate(Device device, size_t bytes) {
  void* p = nullptr;
  if (device.kind == Device::CPU) {
    p = host_cache::allocate(bytes);
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
    host_cache::release(data_, bytes_);
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
