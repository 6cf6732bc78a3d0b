// The one place that knows which backends this build has: the CPU always, CUDA when the build
// found nvcc (CMakeLists.txt defines IGNIS_WITH_CUDA); otherwise the reason there is none.
#include "../cpu/backend.h"
#include "runtime.h"
#ifdef IGNIS_WITH_CUDA
#include "../cuda/backend.h"
#endif
#ifndef IGNIS_NO_CUDA_REASON
#define IGNIS_NO_CUDA_REASON "this addon was built without CUDA support"
#endif

#include <mutex>

namespace ignis::ops {

void register_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_backend(cpu::backend());
#ifdef IGNIS_WITH_CUDA
    register_backend(cuda::backend());
#else
    register_missing_backend(Device::CUDA, IGNIS_NO_CUDA_REASON);
#endif
  });
}

}  // namespace ignis::ops
