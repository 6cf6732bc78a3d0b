// Entry points that make, convert, move and read tensors.
#include <algorithm>
#include <cstring>
#include <future>
#include <vector>

#include "../cpu/cpu.h"
#include "check.h"
#include "kernel.h"
#include "launch.h"
#include "ops.h"

namespace ignis::ops {

Tensor from_host(Runtime& rt, const void* src, DType src_type, const Shape& shape, DType dtype,
                 Device device) {
  rt.queue(device);  // throws E_DEVICE for a device that is not usable
  if (device.kind != Device::CPU) {
    // Converted on the host when the dtypes differ, then uploaded through pinned staging on the
    // device's stream.
    Tensor dev = empty(shape, dtype, device);
    Tensor host = src_type == dtype ? Tensor{} : from_host(rt, src, src_type, shape, dtype, Device{});
#ifdef IGNIS_WITH_CUDA
    cuda::upload(device.index, dev.raw(), host.defined() ? host.raw() : src, dev.nbytes());
#endif
    return dev;
  }
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
  launch(rt, device, {}, {t}, [t, value](const Exec& e) {
    kernel::fill(e, t, value);
  });
  return t;
}

Tensor randn(Runtime& rt, const Shape& shape, DType dtype, Device device, uint64_t seed) {
  rt.throw_pending(device);
  if (!is_float(dtype))
    fail(ErrorCode::DType, std::string("randn: dtype must be f32, f16 or bf16, got ") + dtype_name(dtype));
  Tensor t = empty(shape, dtype, device);
  launch(rt, device, {}, {t}, [t, seed](const Exec& e) {
    kernel::randn(e, t, seed);
  });
  return t;
}

Tensor cast(Runtime& rt, const Tensor& x, DType dtype) {
  rt.throw_pending(x.device());
  if (x.dtype != dtype && !(is_float(x.dtype) && is_float(dtype)))
    fail(ErrorCode::DType, std::string("cast: cannot cast ") + dtype_name(x.dtype) + " to " + dtype_name(dtype) +
                               " (casts are between f32, f16 and bf16)");
  Tensor out = empty(x.shape, dtype, x.device());
  launch(rt, x.device(), {x}, {out}, [out, x](const Exec& e) {
    kernel::cast(e, out, x);
  });
  return out;
}

// A copy between the CPU and a CUDA device: the side that holds x runs the copy once x is
// computed (its queue is in order), and the other side's queue waits for that before any
// later op there can touch the copy.
Tensor to_device(Runtime& rt, const Tensor& x, Device device) {
  rt.queue(device);  // throws E_DEVICE for a device that is not usable
  if (device == x.device()) return x;
  if (x.device().kind == device.kind)
    fail(ErrorCode::Device, "to: copies between " + x.device().name() + " and " + device.name() +
                                " are not supported (go through the CPU)");
  rt.throw_pending(x.device());
  Tensor out = empty(x.shape, x.dtype, device);
#ifdef IGNIS_WITH_CUDA
  auto copied = std::make_shared<std::promise<void>>();
  std::shared_future<void> ready = copied->get_future().share();
  launch(
      rt, x.device(), {x}, {out},
      [x, out](const Exec&) {
        if (out.device().kind == Device::CUDA)
          cuda::upload(out.device().index, out.raw(), x.raw(), x.nbytes());
        else
          cuda::download(x.device().index, out.raw(), x.raw(), x.nbytes());
      },
      [copied](KernelError) { copied->set_value(); });
  rt.queue(device).enqueue([ready] { ready.wait(); });
#endif
  return out;
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
  q.enqueue([&q, x, dst, done = std::move(done)] {
    if (KernelError e = x.storage->error()) {
      done(e);
      return;
    }
    if (x.device().kind == Device::CUDA) {
#ifdef IGNIS_WITH_CUDA
      // Waits for the stream: a kernel fault or a CUDA error found here rejects this read and
      // is thrown by the next call on the device.
      try {
        const int dev = x.device().index;
        if (!dst) {
          cuda::synchronize(dev);
        } else if (is_float(x.dtype) && x.dtype != DType::f32) {
          std::vector<char> raw(x.nbytes());
          cuda::download(dev, raw.data(), x.raw(), raw.size());
          convert_to_f32(raw.data(), x.dtype, static_cast<float*>(dst), size_t(x.numel()));
        } else {
          cuda::download(dev, dst, x.raw(), x.nbytes());
        }
      } catch (const Error& e) {
        KernelError err = std::make_shared<const Error>(e);
        q.set_error(err);
        done(err);
        return;
      }
#endif
    } else if (!dst) {  // only waiting for x
    } else if (is_float(x.dtype)) {
      convert_to_f32(x.raw(), x.dtype, static_cast<float*>(dst), size_t(x.numel()));
    } else {
      std::memcpy(dst, x.raw(), x.nbytes());
    }
    done(nullptr);
  });
}

}  // namespace ignis::ops
