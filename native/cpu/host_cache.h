// A caching allocator for host tensor memory. Buffers of 4 KiB and up are rounded into size
// classes (at most 1/8 over) and, when freed, kept for the next allocation of that class, up to
// a byte limit: an op's output or a graph's arena then costs no mmap, page faults or zero fill
// per call. Smaller buffers go straight to malloc, which already serves them from its heap.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ignis::host_cache {

struct Stats {
  uint64_t allocated = 0;  // bytes held by live buffers (as requested, rounded to 64)
  uint64_t reserved = 0;   // allocated + bytes kept in the cache
  uint64_t peak = 0;       // the most `allocated` has been
};

// 64-byte aligned; null when the system has no memory left.
void* allocate(size_t bytes);
void release(void* p, size_t bytes);
Stats stats();
// Frees every cached buffer; returns the bytes freed.
uint64_t empty();
// The most the cache keeps (default 1 GiB, or IGNIS_CPU_CACHE_BYTES).
void set_limit(uint64_t bytes);

}  // namespace ignis::host_cache
