// spin_until: watch a condition for a while, yielding the core between looks, before a thread
// falls back to sleeping on a condition variable (whose wake costs tens of microseconds on a VM).
#pragma once
#include <chrono>
#include <thread>

namespace ignis {

// True once done() holds, false if it still does not after `limit`. Yields rather than pauses:
// on a machine with as many threads as cores, the JS thread gets the core back at once.
template <class Pred>
bool spin_until(Pred done, std::chrono::microseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (int i = 0;; i++) {
    if (done()) return true;
    std::this_thread::yield();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return done();
  }
}

}  // namespace ignis
