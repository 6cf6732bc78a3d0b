// Storage allocation through the device's backend (core/backend.h), and the small shape helpers.
#include "tensor.h"

#include "backend.h"

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
  Backend& b = backend(device.kind);
  void* p = b.allocate(device.index, bytes);
  try {
    return std::shared_ptr<Storage>(new Storage(device, p, bytes));
  } catch (...) {
    b.free(device.index, p, bytes);
    throw;
  }
}

Storage::~Storage() { backend(device_.kind).free(device_.index, data_, bytes_); }

Tensor empty(Shape shape, DType dtype, Device device) {
  Tensor t;
  t.storage = Storage::allocate(device, size_t(shape_numel(shape)) * dtype_size(dtype));
  t.shape = std::move(shape);
  t.dtype = dtype;
  return t;
}

}  // namespace ignis
