// Small argument checks shared by the op entry points; each throws ignis::Error with a
// message naming the op and what it received.
#pragma once
#include <string>

#include "../core/tensor.h"

namespace ignis::ops {

inline void check_float(const char* op, const char* what, const Tensor& t) {
  if (!is_float(t.dtype))
    fail(ErrorCode::DType, std::string(op) + ": " + what + " must be f32, f16 or bf16, got " +
                               dtype_name(t.dtype));
}

inline void check_same_dtype(const char* op, const char* wa, const Tensor& a, const char* wb,
                             const Tensor& b) {
  if (a.dtype != b.dtype)
    fail(ErrorCode::DType, std::string(op) + ": " + wa + " is " + dtype_name(a.dtype) + " but " +
                               wb + " is " + dtype_name(b.dtype));
}

inline void check_same_device(const char* op, const char* wa, const Tensor& a, const char* wb,
                              const Tensor& b) {
  if (a.device() != b.device())
    fail(ErrorCode::Device, std::string(op) + ": " + wa + " is on " + a.device().name() + " but " +
                                wb + " is on " + b.device().name());
}

inline void check_rank(const char* op, const char* what, const Tensor& t, int min_rank, int max_rank) {
  if (t.rank() < min_rank || t.rank() > max_rank) {
    std::string want = min_rank == max_rank ? std::to_string(min_rank)
                                            : std::to_string(min_rank) + ".." + std::to_string(max_rank);
    fail(ErrorCode::Shape, std::string(op) + ": " + what + " must have rank " + want + ", got " +
                               shape_str(t.shape));
  }
}

[[noreturn]] inline void fail_shapes(const char* op, const char* wa, const Tensor& a, const char* wb,
                                     const Tensor& b, const std::string& why) {
  fail(ErrorCode::Shape, std::string(op) + ": " + wa + " " + shape_str(a.shape) + " and " + wb + " " +
                             shape_str(b.shape) + " " + why);
}

}  // namespace ignis::ops
