// Storage allocation through the device's backend (core/backend.h), and the small shape helpers.
#include "tensor.h"

#include "backend.h"
#include "limits.h"

namespace ignis {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

int64_t check_shape(const Shape& s, const char* what) {
  const int64_t n = checked_numel(s.data(), s.size());
  if (n < 0)
    fail(ErrorCode::Range, std::string(what) + " " + shape_str(s) + " is past the " + std::to_string(kMaxElements) +
                               " elements (2^40) a tensor may hold");
  return n;
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::shared_ptr<Storage> Storage::allocate(Device device, size_t bytes) {
  // No tensor is larger than kMaxElements of 8 bytes: a larger request is a size that overflowed.
  if (bytes > size_t(kMaxElements) * 8)
    fail(ErrorCode::Range, "a request for " + std::to_string(bytes) + " bytes is past what a tensor may hold");
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
  t.storage = Storage::allocate(device, size_t(check_shape(shape, "a tensor of shape")) * dtype_size(dtype));
  t.shape = std::move(shape);
  t.dtype = dtype;
  return t;
}

}  // namespace ignis
