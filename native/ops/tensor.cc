// Entry points that make, convert, move and read tensors, and the build's and devices' figures.
#include <algorithm>
#include <cstring>
#include <future>
#include <vector>

#include "../cpu/cpu.h"
#include "../cpu/simd.h"
#include "launch.h"
#include "ops.h"

namespace ignis::ops {
namespace {

// Enqueues a creation kernel (fill, randn) writing t.
void enqueue_make(Runtime& rt, const Tensor& t, OpParams p) {
  Backend& b = backend(t.device().kind);
  launch(rt, t.device(), {}, {t}, [&b, p](const Exec& e, const std::vector<Tensor>&, const std::vector<Tensor>& o) {
    const Tensor* out = &o[0];
    run_kernel(e, b, p, nullptr, 0, &out, 1);
  });
}

}  // namespace

void convert_host(const void* src, DType src_type, void* dst, DType dtype, size_t n) {
  if (src_type == dtype) {
    std::memcpy(dst, src, n * dtype_size(dtype));
  } else if (src_type == DType::f32 && is_float(dtype)) {
    cpu::convert_from_f32(static_cast<const float*>(src), dst, dtype, n);
  } else if (is_float(src_type) && dtype == DType::f32) {
    cpu::convert_to_f32(src, src_type, static_cast<float*>(dst), n);
  } else if (is_float(src_type) && is_float(dtype)) {  // f16 <-> bf16, through f32 in chunks
    constexpr size_t kChunk = 4096;
    float tmp[kChunk];
    const size_t es = dtype_size(src_type), ed = dtype_size(dtype);
    for (size_t i = 0; i < n; i += kChunk) {
      const size_t w = std::min(kChunk, n - i);
      cpu::convert_to_f32(static_cast<const char*>(src) + i * es, src_type, tmp, w);
      cpu::convert_from_f32(tmp, static_cast<char*>(dst) + i * ed, dtype, w);
    }
  } else {
    fail(ErrorCode::DType, std::string("cannot make a ") + dtype_name(dtype) + " tensor from " +
                               dtype_name(src_type) + " data");
  }
}

Tensor from_host(Runtime& rt, const void* src, DType src_type, const Shape& shape, DType dtype, Device device) {
  rt.queue(device);  // throws E_DEVICE for a device that is not usable
  if (device.kind != Device::CPU) {
    // Converted on the host when the dtypes differ, then copied in (on a CUDA device, through
    // pinned staging on its stream).
    Tensor dev = empty(shape, dtype, device);
    Tensor host = src_type == dtype ? Tensor{} : from_host(rt, src, src_type, shape, dtype, Device{});
    backend(device.kind).copy_in(device.index, dev.raw(), host.defined() ? host.raw() : src, dev.nbytes());
    return dev;
  }
  Tensor t = empty(shape, dtype, device);
  convert_host(src, src_type, t.raw(), dtype, size_t(t.numel()));
  return t;
}

Tensor full(Runtime& rt, const Shape& shape, DType dtype, Device device, double value) {
  rt.check_lost(device);
  Tensor t = empty(shape, dtype, device);
  FillParams p;
  p.value = value;
  enqueue_make(rt, t, p);
  return t;
}

Tensor randn(Runtime& rt, const Shape& shape, DType dtype, Device device, uint64_t seed) {
  rt.check_lost(device);
  if (!is_float(dtype))
    fail(ErrorCode::DType, std::string("randn: dtype must be f32, f16 or bf16, got ") + dtype_name(dtype));
  Tensor t = empty(shape, dtype, device);
  RandnParams p;
  p.seed = seed;
  enqueue_make(rt, t, p);
  return t;
}

// A copy between the CPU and a device: the side that holds x runs the copy once x is computed
// (its queue is in order), and the other side's queue waits for that before any later op there
// can touch the copy.
Tensor to_device(Runtime& rt, const Tensor& x, Device device) {
  rt.queue(device);  // throws E_DEVICE for a device that is not usable
  if (device == x.device()) return x;
  if (x.device().kind == device.kind)
    fail(ErrorCode::Device, "to: copies between " + x.device().name() + " and " + device.name() +
                                " are not supported (go through the CPU)");
  rt.check_lost(x.device());
  Tensor out = empty(x.shape, x.dtype, device);
  auto copied = std::make_shared<std::promise<void>>();
  std::shared_future<void> ready = copied->get_future().share();
  launch(
      rt, x.device(), {x}, {out},
      [x, out](const Exec&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
        if (out.device().kind != Device::CPU)
          backend(out.device().kind).copy_in(out.device().index, out.raw(), x.raw(), x.nbytes());
        else
          backend(x.device().kind).copy_out(x.device().index, out.raw(), x.raw(), x.nbytes());
      },
      [copied](KernelError) { copied->set_value(); });
  rt.queue(device).enqueue([ready] { ready.wait(); });
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
  rt.queue(x.device()).enqueue([x, dst, done = std::move(done)] {
    if (KernelError e = x.storage->error()) {
      done(e);
      return;
    }
    // On a device, copy_out and synchronize wait for its stream: an error the device hit
    // rejects this read.
    try {
      const Device d = x.device();
      Backend& b = backend(d.kind);
      if (!dst) {
        b.synchronize(d.index);
      } else if (is_float(x.dtype) && x.dtype != DType::f32) {
        if (d.kind == Device::CPU) {
          cpu::convert_to_f32(x.raw(), x.dtype, static_cast<float*>(dst), size_t(x.numel()));
        } else {
          std::vector<char> raw(x.nbytes());
          b.copy_out(d.index, raw.data(), x.raw(), raw.size());
          cpu::convert_to_f32(raw.data(), x.dtype, static_cast<float*>(dst), size_t(x.numel()));
        }
      } else {
        b.copy_out(d.index, dst, x.raw(), x.nbytes());
      }
    } catch (const Error& e) {
      done(std::make_shared<const Error>(e));
      return;
    }
    done(nullptr);
  });
}

void clear_errors(Runtime& rt, const std::vector<Tensor>& xs) {
  for (const Tensor& x : xs) rt.queue(x.device());  // E_DEVICE before anything is queued
  for (const Tensor& x : xs)
    rt.queue(x.device()).enqueue([s = x.storage] { s->clear_error(); });
}

Info info(Runtime& rt) {
  Info r;
  r.simd = cpu::simd_name();
  r.threads = rt.pool().size();
  std::string why;
  if (Backend* b = find_backend(Device::CUDA, &why)) {
    r.cuda_compiled = true;
    r.cuda = b->status();
    for (size_t i = 0; i < r.cuda.devices.size(); i++) r.cuda.devices[i].lost = b->lost(int(i));
  } else {
    r.cuda.reason = why;
  }
  return r;
}

MemoryStats memory(Runtime& rt, Device d) {
  rt.queue(d);  // E_DEVICE, saying why, for a device that is not usable
  return backend(d.kind).memory(d.index);
}

int64_t empty_cache(Runtime& rt, Device d) {
  rt.queue(d);
  return backend(d.kind).empty_cache(d.index);
}

}  // namespace ignis::ops
