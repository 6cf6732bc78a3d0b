// The one error type of the native side: a stable code (surfaced to JS as IgnisError.code)
// and a message a user can act on. Kernels throw it; the binding turns it into a JS error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ignis {

// Range: a size past what ignis can hold (kMaxElements), or a count past a limit; JS sees it as
// a RangeError with code E_RANGE, as the argument checks in lib/ throw it.
// DeviceLost: the device's context is gone (an illegal address, an uncorrectable ECC error): every
// later call on it fails with this, and info() says so.
enum class ErrorCode : uint8_t {
  Shape, DType, Device, Disposed, OOM, Cuda, Format, Argument, Index, Internal, Range, DeviceLost, Count
};
inline constexpr const char* kErrorCodeNames[] = {
    "E_SHAPE", "E_DTYPE", "E_DEVICE", "E_DISPOSED", "E_OOM",
    "E_CUDA",  "E_FORMAT", "E_ARGUMENT", "E_INDEX", "E_INTERNAL", "E_RANGE", "E_DEVICE_LOST"};
static_assert(sizeof(kErrorCodeNames) / sizeof(kErrorCodeNames[0]) == size_t(ErrorCode::Count),
              "every error code needs a name");
inline const char* error_code_name(ErrorCode c) { return kErrorCodeNames[size_t(c)]; }

struct Error : std::runtime_error {
  ErrorCode code;
  Error(ErrorCode c, const std::string& msg) : std::runtime_error(msg), code(c) {}
};

[[noreturn]] inline void fail(ErrorCode c, const std::string& msg) { throw Error(c, msg); }

}  // namespace ignis
