// The CUDA backend (core/backend.h): device memory from the caching allocator of runtime.h,
// copies through pinned staging, kernels enqueued on each device's stream, and plans replayed
// as CUDA graphs (graphs.cc).
#pragma once
#include "../core/backend.h"

namespace ignis::cuda {

Backend* backend();
// A recorder of compiled plans as CUDA graphs; IGNIS_CUDA_GRAPHS=0 turns them off (null).
std::unique_ptr<Recorder> make_recorder();

}  // namespace ignis::cuda
