// Fork-join pool: parallel_for hands out contiguous chunks; the calling thread runs chunk 0.
#include "thread_pool.h"

#include "spin.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace ignis {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

static void chunk_range(int64_t n, int chunks, int i, int64_t* b, int64_t* e) {
  int64_t base = n / chunks, extra = n % chunks;
  *b = i * base + std::min<int64_t>(i, extra);
  *e = *b + base + (i < extra ? 1 : 0);
}

// Spinning (not sleeping) this long after a job: a kernel calls parallel_for several times in a
// row (pack B, compute, ...), and a condition-variable wake costs tens of microseconds on a VM.
static constexpr auto kSpin = std::chrono::microseconds(100);

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int chunks = int(std::min<int64_t>(size(), (n + grain - 1) / grain));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_chunks_ = chunks;
    pending_.store(chunks - 1, std::memory_order_relaxed);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  std::exception_ptr mine;
  try {
    int64_t b, e;
    chunk_range(n, chunks, 0, &b, &e);
    fn(b, e);
  } catch (...) {
    mine = std::current_exception();
  }
  auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(finished, 10 * kSpin)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, finished);
  }
  std::unique_lock<std::mutex> lock(mu_);
  job_ = nullptr;
  std::exception_ptr err = mine ? mine : error_;
  lock.unlock();
  if (err) std::rethrow_exception(err);
}

void ThreadPool::worker_main(int id) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    if (spin_until(ready, kSpin)) {
      lock.lock();
    } else {
      lock.lock();
      wake_.wait(lock, ready);
    }
    if (stop_) return;
    seen = generation_.load(std::memory_order_relaxed);
    if (id >= job_chunks_) continue;
    const auto* fn = job_;
    int64_t b, e;
    chunk_range(job_n_, job_chunks_, id, &b, &e);
    lock.unlock();
    std::exception_ptr err;
    try {
      (*fn)(b, e);
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    if (err && !error_) error_ = err;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_all();
  }
}

}  // namespace ignis
