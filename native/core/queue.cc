// Worker loop of a device queue. A task that throws has already recorded its error on its
// outputs (see ops/launch.h); anything escaping a task is kept as the queue's error.
#include "queue.h"

#include <chrono>

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

void Queue::set_error(KernelError e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_) error_ = std::move(e);
}

KernelError Queue::take_error() {
  std::lock_guard<std::mutex> lock(mu_);
  KernelError e = std::move(error_);
  error_ = nullptr;
  return e;
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
    } catch (const Error& e) {
      set_error(std::make_shared<const Error>(e));
    } catch (const std::exception& e) {
      set_error(std::make_shared<const Error>(ErrorCode::Internal, name_ + ": " + e.what()));
    } catch (...) {
      set_error(std::make_shared<const Error>(ErrorCode::Internal, name_ + ": unknown error"));
    }
    task = nullptr;  // release the task's tensors on the worker, before waiting again
  }
}

}  // namespace ignis
