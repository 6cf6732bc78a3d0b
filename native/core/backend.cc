// The backend registry: one backend per kind of device, or the reason this build has none.
// Lookups are on every allocation's path, so they read an atomic pointer, not a lock.
#include "backend.h"

#include <atomic>
#include <mutex>

namespace ignis {
namespace {

struct Registry {
  std::atomic<Backend*> backends[2] = {nullptr, nullptr};
  std::mutex mu;  // guards reasons
  std::string reasons[2];
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: storage may be freed at exit
  return *r;
}

}  // namespace

void register_backend(Backend* b) { registry().backends[b->kind()].store(b, std::memory_order_release); }

void register_missing_backend(Device::Kind kind, const char* reason) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.reasons[kind] = reason;
}

Backend* find_backend(Device::Kind kind, std::string* reason) {
  Registry& r = registry();
  Backend* b = r.backends[kind].load(std::memory_order_acquire);
  if (!b && reason) {
    std::lock_guard<std::mutex> lock(r.mu);
    *reason = r.reasons[kind].empty() ? "no backend was registered for it" : r.reasons[kind];
  }
  return b;
}

Backend& backend(Device::Kind kind) {
  std::string reason;
  if (Backend* b = find_backend(kind, &reason)) return *b;
  fail(ErrorCode::Device, std::string(kind == Device::CPU ? "cpu" : "cuda") + " is not available: " + reason);
}

}  // namespace ignis
