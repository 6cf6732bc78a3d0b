// The CPU backend (core/backend.h): host memory from the caching allocator, copies by memcpy,
// kernels run on the queue's worker with the thread pool.
#pragma once
#include "../core/backend.h"

namespace ignis::cpu {

Backend* backend();

}  // namespace ignis::cpu
