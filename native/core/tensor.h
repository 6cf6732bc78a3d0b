// Device, Storage (a ref-counted buffer on one device) and Tensor (a typed, shaped view of a
// Storage). Tensors are always contiguous; a reshape is a second view of the same storage.
// A queued op holds Tensors by value, which keeps their storage alive until it has run.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dtype.h"
#include "error.h"

namespace ignis {

struct Device {
  enum Kind : uint8_t { CPU, CUDA };
  Kind kind = CPU;
  int index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const { return kind == CPU ? "cpu" : "cuda:" + std::to_string(index); }
};

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3, 4]"
// The element count of a shape that has passed check_shape (the product, unchecked).
int64_t shape_numel(const Shape& s);
// Throws E_RANGE naming `what` and the shape when it has a negative dimension, or a dimension or
// an element count past kMaxElements (core/limits.h); returns the element count.
int64_t check_shape(const Shape& s, const char* what);

// A failure raised while a kernel ran. It is stored on the outputs of the failed op (so
// reading them rejects) and on the queue (so the next call on that device throws it).
using KernelError = std::shared_ptr<const Error>;

class Storage {
 public:
  // Allocates `bytes` on `device`; throws E_OOM (with the size) when it cannot.
  static std::shared_ptr<Storage> allocate(Device device, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  void set_error(KernelError e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::move(e);
  }
  KernelError error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  // The contents are being replaced whole (or were reset): the error they carried no longer
  // describes them. Called on the device's worker, in queue order.
  void clear_error() {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = nullptr;
  }

 private:
  Storage(Device d, void* p, size_t n) : device_(d), data_(p), bytes_(n) {}
  Device device_;
  void* data_;
  size_t bytes_;
  mutable std::mutex mu_;
  KernelError error_;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes from the start of storage
  Shape shape;
  DType dtype = DType::f32;

  bool defined() const { return storage != nullptr; }
  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int rank() const { return int(shape.size()); }
  // Size of dimension i; negative i counts from the end.
  int64_t dim(int i) const { return shape[size_t(i < 0 ? i + rank() : i)]; }
  Device device() const { return storage->device(); }
  void* raw() const { return static_cast<char*>(storage->data()) + offset; }
  template <class T> T* data() const { return static_cast<T*>(raw()); }
};

// A new contiguous tensor; its contents are uninitialized.
Tensor empty(Shape shape, DType dtype, Device device);

}  // namespace ignis
