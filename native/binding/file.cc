// readFile(fd, offset, byteLength, srcDtype, dtype, shape) -> Promise<handle>: a CPU tensor read
// straight from an open file, off the JS thread (a libuv pool thread), with no copy in between:
// stored bytes of the tensor's dtype are read into its memory; others are read a chunk at a time
// and converted (float <-> float) into it. The caller keeps fd open until the promise settles.
// POSIX only (pread); elsewhere it throws and lib/ reads through fromBytes.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#if !defined(_WIN32)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "../ops/ops.h"
#include "addon.h"

namespace ignis::binding {
namespace {

constexpr size_t kDirectChunk = size_t(64) << 20;  // bytes one pread asks for
constexpr size_t kConvertChunk = size_t(4) << 20;  // stored bytes read, then converted, at a time

#if defined(__linux__)
// Maps the pages of a fresh destination in one call (Linux 5.14+) instead of one fault per 4 KiB
// page as the read first touches them; elsewhere, or on an older kernel, a no-op.
void prefault(void* dst, size_t n) {
  constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, absent from older headers
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t a = (uintptr_t(dst) + page - 1) / page * page, b = (uintptr_t(dst) + n) / page * page;
  if (b > a) madvise(reinterpret_cast<void*>(a), b - a, kPopulateWrite);
}
#else
void prefault(void*, size_t) {}
#endif

#if !defined(_WIN32)
// Reads n bytes at offset into dst; a file that ends first, or a read error, is an Error.
void read_at(int fd, char* dst, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, dst + done, std::min(n - done, kDirectChunk), off_t(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(ErrorCode::Argument, std::string("read failed at byte ") + std::to_string(offset + done) + ": " + std::strerror(errno));
    }
    if (r == 0)
      fail(ErrorCode::Format, "the file ends at byte " + std::to_string(offset + done) + ", inside the " + std::to_string(n) +
                                  " bytes at " + std::to_string(offset));
    done += size_t(r);
  }
}
#endif

class FileRead : public Napi::AsyncWorker {
 public:
  FileRead(Napi::Env env, int fd, uint64_t offset, DType src, Tensor t)
      : Napi::AsyncWorker(env, "ignis.readFile"), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), offset_(offset),
        src_(src), t_(std::move(t)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      run();
    } catch (const Error& e) {
      error_ = e;
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      error_ = Error(ErrorCode::OOM, "out of host memory");
      SetError("out of host memory");
    }
  }
  void OnOK() override { deferred_.Resolve(wrap(Env(), std::move(t_))); }
  void OnError(const Napi::Error&) override { deferred_.Reject(ignis_error(Env(), error_).Value()); }

 private:
  void run() {
#if defined(_WIN32)
    fail(ErrorCode::Argument, "readFile is not available on Windows");
#else
    const size_t n = size_t(t_.numel());
    char* dst = static_cast<char*>(t_.raw());
    if (n * dtype_size(t_.dtype) >= (size_t(1) << 20)) prefault(dst, n * dtype_size(t_.dtype));
    if (src_ == t_.dtype) return read_at(fd_, dst, n * dtype_size(src_), offset_);
    const size_t es = dtype_size(src_), ed = dtype_size(t_.dtype);
    const size_t per = std::max<size_t>(1, kConvertChunk / es);  // elements a chunk
    std::vector<char> chunk(std::min(n, per) * es);
    for (size_t i = 0; i < n; i += per) {
      const size_t w = std::min(per, n - i);
      read_at(fd_, chunk.data(), w * es, offset_ + uint64_t(i) * es);
      ops::convert_host(chunk.data(), src_, dst + i * ed, t_.dtype, w);
    }
#endif
  }

  Napi::Promise::Deferred deferred_;
  int fd_;
  uint64_t offset_;
  DType src_;
  Tensor t_;
  Error error_{ErrorCode::Internal, ""};
};

Napi::Value ReadFile(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int64_t fd = arg_int(info, 0, "fd");
    const int64_t offset = arg_int(info, 1, "offset");
    const int64_t bytes = arg_int(info, 2, "byteLength");
    const DType src = arg_dtype(info, 3), dtype = arg_dtype(info, 4);
    const Shape shape = arg_shape(info, 5);
    if (fd < 0 || fd > INT32_MAX) throw type_error(env, "readFile: fd must be an open file descriptor");
    if (offset < 0 || bytes < 0) throw type_error(env, "readFile: offset and byteLength must be >= 0");
    const int64_t numel = shape_numel(shape);
    if (numel < 0 || uint64_t(bytes) != uint64_t(numel) * dtype_size(src))
      fail(ErrorCode::Shape, std::to_string(bytes) + " bytes do not hold " + shape_str(shape) + " " + dtype_name(src));
    if (src != dtype && !(is_float(src) && is_float(dtype)))
      fail(ErrorCode::DType, std::string("cannot make a ") + dtype_name(dtype) + " tensor from " + dtype_name(src) + " data");
    addon(env).runtime->queue(Device{});  // the CPU queue exists (and no error is pending on it)
    Tensor t = empty(shape, dtype, Device{});
    auto* w = new FileRead(env, int(fd), uint64_t(offset), src, std::move(t));
    Napi::Promise p = w->promise();
    w->Queue();  // deletes itself once settled
    return p;
  });
}

}  // namespace

void register_file(Napi::Env env, Napi::Object exports) {
  exports.Set("readFile", Napi::Function::New(env, ReadFile, "readFile"));
}

}  // namespace ignis::binding
