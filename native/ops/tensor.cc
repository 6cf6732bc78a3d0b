// Entry points that make, convert, move and read tensors.
#include <algorithm>
#include <cstring>

#include "../cpu/cpu.h"
#include "check.h"
#include "launch.h"
#include "ops.h"

namespace ignis::ops {

Tensor from_host(Runtime& rt, const void* src, DType src_type, const Shape& shape, DType dtype,
                 Device device) {
  Queue& q = rt.queue(device);
  (void)q;
  if (device.kind != Device::CPU) fail(ErrorCode::Device, "from_host: only the CPU is supported");
  Tensor t = empty(shape, dtype, device);
  size_t n = size_t(t.numel());
  if (src_type == dtype) {
    std::memcpy(t.raw(), src, t.nbytes());
  } else if (src_type == DType::f32 && is_float(dtype)) {
    convert_from_f32(static_cast<const float*>(src), t.raw(), dtype, n);
  } else if (is_float(src_type) && dtype == DType::f32) {
    convert_to_f32(src, src_type, t.data<float>(), n);
  } else if (is_float(src_type) && is_float(dtype)) {  // f16 <-> bf16, through f32 in chunks
    constexpr size_t kChunk = 4096;
    float tmp[kChunk];
    const size_t es = dtype_size(src_type), ed = dtype_size(dtype);
    for (size_t i = 0; i < n; i += kChunk) {
      const size_t w = std::min(kChunk, n - i);
      convert_to_f32(static_cast<const char*>(src) + i * es, src_type, tmp, w);
      convert_from_f32(tmp, static_cast<char*>(t.raw()) + i * ed, dtype, w);
    }
  } else {
    fail(ErrorCode::DType, std::string("cannot make a ") + dtype_name(dtype) + " tensor from " +
                               dtype_name(src_type) + " data");
  }
  return t;
}

Tensor full(Runtime& rt, const Shape& shape, DType dtype, Device device, double value) {
  rt.throw_pending(device);
  Tensor t = empty(shape, dtype, device);
  ThreadPool& pool = rt.pool();
  launch(rt.queue(device), {}, {t}, [&pool, t, value] { cpu::fill(pool, t, value); });
  return t;
}

Tensor randn(Runtime& rt, const Shape& shape, DType dtype, Device device, uint64_t seed) {
  rt.throw_pending(device);
  if (!is_float(dtype))
    fail(ErrorCode::DType, std::string("randn: dtype must be f32, f16 or bf16, got ") + dtype_name(dtype));
  Tensor t = empty(shape, dtype, device);
  ThreadPool& pool = rt.pool();
  launch(rt.queue(device), {}, {t}, [&pool, t, seed] { cpu::randn(pool, t, seed); });
  return t;
}

Tensor cast(Runtime& rt, const Tensor& x, DType dtype) {
  rt.throw_pending(x.device());
  if (x.dtype != dtype && !(is_float(x.dtype) && is_float(dtype)))
    fail(ErrorCode::DType, std::string("cast: cannot cast ") + dtype_name(x.dtype) + " to " + dtype_name(dtype) +
                               " (casts are between f32, f16 and bf16)");
  Tensor out = empty(x.shape, dtype, x.device());
  ThreadPool& pool = rt.pool();
  launch(rt.queue(x.device()), {x}, {out}, [&pool, out, x] { cpu::cast(pool, out, x); });
  return out;
}

Tensor to_device(Runtime& rt, const Tensor& x, Device device) {
  rt.queue(device);  // throws E_DEVICE for a device that is not usable
  if (device == x.device()) return x;
  fail(ErrorCode::Device, "to: copies between " + x.device().name() + " and " + device.name() +
                              " are not supported by this build");
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  if (shape_numel(shape) != x.numel())
    fail(ErrorCode::Shape, "reshape: cannot view " + shape_str(x.shape) + " (" + std::to_string(x.numel()) +
                               " elements) as " + shape_str(shape) + " (" + std::to_string(shape_numel(shape)) +
                               " elements)");
  Tensor v = x;
  v.shape = shape;
  return v;
}

DType read_type(DType t) { return is_float(t) ? DType::f32 : t; }

void read(Runtime& rt, const Tensor& x, void* dst, std::function<void(KernelError)> done) {
  Queue& q = rt.queue(x.device());
  q.enqueue([x, dst, done = std::move(done)] {
    if (KernelError e = x.storage->error()) {
      done(e);
      return;
    }
    if (!dst) {  // only waiting for x
    } else if (is_float(x.dtype))
      convert_to_f32(x.raw(), x.dtype, static_cast<float*>(dst), size_t(x.numel()));
    else
      std::memcpy(dst, x.raw(), x.nbytes());
    done(nullptr);
  });
}

}  // namespace ignis::ops
