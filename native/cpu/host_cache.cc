// Host caching allocator: a free list per size class behind one mutex (allocations are per op,
// not per element, so the lock is not hot).
#include "host_cache.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ignis::host_cache {
namespace {

constexpr size_t kCachedMin = size_t(4) << 10;  // smaller buffers are malloc's business
constexpr size_t kMaxBytes = size_t(1) << 56;   // past any machine's memory, far from overflow

void* system_alloc(size_t bytes) {
#if defined(_WIN32)
  return _aligned_malloc(bytes, 64);
#else
  void* p = nullptr;
  return posix_memalign(&p, 64, bytes) == 0 ? p : nullptr;
#endif
}

void system_free(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

// The size a request is served with: 64-byte multiples below kCachedMin; above, the next of 8
// steps between consecutive powers of two (so a class wastes at most 1/8).
size_t size_class(size_t bytes) {
  size_t r = (bytes + 63) / 64 * 64;
  if (r == 0) r = 64;
  if (r < kCachedMin) return r;
  size_t pow2 = kCachedMin;
  while (pow2 * 2 <= r) pow2 *= 2;
  const size_t step = pow2 / 8;
  return (r + step - 1) / step * step;
}

uint64_t default_limit() {
  const char* s = std::getenv("IGNIS_CPU_CACHE_BYTES");
  if (s && *s) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (end && *end == 0) return v;
  }
  return uint64_t(1) << 30;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // by size class
  uint64_t cached = 0, allocated = 0, peak = 0;
  uint64_t limit = default_limit();

  void count(size_t n) {  // mu held
    allocated += n;
    if (allocated > peak) peak = allocated;
  }

  void trim_to(uint64_t target) {  // mu held
    for (auto it = free.begin(); it != free.end() && cached > target;) {
      while (!it->second.empty() && cached > target) {
        system_free(it->second.back());
        it->second.pop_back();
        cached -= it->first;
      }
      it = it->second.empty() ? free.erase(it) : std::next(it);
    }
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: storages may be freed during exit
  return *c;
}

}  // namespace

void* allocate(size_t bytes) {
  if (bytes > kMaxBytes) return nullptr;  // no machine has it; size_class would overflow
  const size_t n = size_class(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free.find(n);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= n;
      c.count(n);
      return p;
    }
  }
  void* p = system_alloc(n);
  if (!p) {
    // Cached buffers of other sizes may be what the system is missing: free them and retry.
    {
      std::lock_guard<std::mutex> lock(c.mu);
      c.trim_to(0);
    }
    p = system_alloc(n);
  }
  if (p) {  // a failed request is not counted, in allocated or in peak
    std::lock_guard<std::mutex> lock(c.mu);
    c.count(n);
  }
  return p;
}

void release(void* p, size_t bytes) {
  if (!p) return;
  const size_t n = size_class(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.allocated -= n;
    if (n >= kCachedMin && n <= c.limit) {
      c.free[n].push_back(p);
      c.cached += n;
      c.trim_to(c.limit);
      return;
    }
  }
  system_free(p);
}

Stats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return Stats{c.allocated, c.allocated + c.cached, c.peak};
}

uint64_t empty() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  const uint64_t before = c.cached;
  c.trim_to(0);
  return before;
}

void set_limit(uint64_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  c.trim_to(bytes);
}

}  // namespace ignis::host_cache
