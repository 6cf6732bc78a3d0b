// The in-order execution queue of one device: a native worker thread that runs tasks one at
// a time, in the order they were enqueued. On the CPU a task runs its kernel (with the thread
// pool); on a GPU it would issue work to the device's stream. The JS thread only enqueues.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "tensor.h"

namespace ignis {

class Queue {
 public:
  using Task = std::function<void()>;
  explicit Queue(std::string name);
  ~Queue();  // finishes the running task, drops the queued ones, joins the worker
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  void enqueue(Task task);  // the JS thread never waits on a queue

 private:
  void run();
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stop_ = false;
  std::atomic<uint64_t> pushed_{0};  // tasks ever enqueued: the idle worker watches it
  std::thread worker_;
};

}  // namespace ignis
