// Worker loop of a device queue. A task records its errors on its outputs (see ops/launch.h),
// where the reads of them and of everything computed from them find them: an error never
// waits on the queue for an unrelated call. Anything escaping a task is a bug of ignis, said
// on stderr (there is no caller to give it to).
#include "queue.h"

#include <chrono>
#include <cstdio>

#include "spin.h"

namespace ignis {

Queue::Queue(std::string name) : name_(std::move(name)), worker_([this] { run(); }) {}

Queue::~Queue() {
  std::deque<Task> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    dropped.swap(tasks_);  // at shutdown nobody waits for queued work: drop it
  }
  cv_.notify_all();
  worker_.join();
}

void Queue::enqueue(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  pushed_.fetch_add(1, std::memory_order_release);
  cv_.notify_one();
}

static constexpr auto kSpin = std::chrono::microseconds(300);

void Queue::run() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (tasks_.empty()) {
        // Watch for the next task a while before sleeping (yielding, so the JS thread is not
        // kept off a core): a caller that awaits a result and enqueues the next op, as a decode
        // loop does, is back within this, and a condition-variable wake costs ~20-30 us on a VM.
        const uint64_t seen = pushed_.load(std::memory_order_acquire);
        lock.unlock();
        spin_until([&] { return pushed_.load(std::memory_order_acquire) != seen; }, kSpin);
        lock.lock();
      }
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stop_ and nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ignis: an error escaped a task on %s (a bug of ignis): %s\n", name_.c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "ignis: an error escaped a task on %s (a bug of ignis)\n", name_.c_str());
    }
    task = nullptr;  // release the task's tensors on the worker, before waiting again
  }
}

}  // namespace ignis
