// RunControl: the run's stop state and the requests that signals carry, shared by the loop that
// drives the run and the threads that wait inside it.
//
// SignalWatcher blocks TERM, INT, HUP and USR1 in the calling thread — construct it in main() before
// any other thread exists, so every thread inherits the mask — and receives them with sigwait() on a
// thread of its own; no code runs in signal-handler context. Each change wakes both kinds of waiter:
// threads blocked in wait_for() (condition variable) and loops polling wake_fd() (an eventfd the loop
// drains with drain_wakeups()).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace cbm {

enum class StopLevel { none, drain, now };

class RunControl {
 public:
  RunControl();
  ~RunControl();
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  // A TERM/INT: the first asks for a drain, the second for an immediate stop.
  void on_stop_signal(int signal);
  // Escalates to an immediate stop (the drain grace ran out, or the run must abort).
  void stop_now();
  void request_drain();
  void request_reload() { reload_.store(true); notify(); }
  void request_status() { status_.store(true); notify(); }

  StopLevel level() const { return level_.load(); }
  // True once an immediate stop is requested: HTTP transfers poll it to abort (HttpOptions::abort).
  const std::atomic<bool>& abort_flag() const { return abort_; }
  bool stopping() const { return level() != StopLevel::none; }
  int first_signal() const { return first_signal_.load(); }  // 0 when no signal arrived
  bool take_reload() { return reload_.exchange(false); }
  bool take_status() { return status_.exchange(false); }

  // Sleeps for `d` unless a stop is requested first; returns true if stopping.
  bool wait_for(std::chrono::steady_clock::duration d);

  // Wakes the driving loop (also used by worker threads when they finish a task).
  void notify();
  int wake_fd() const { return wake_fd_; }
  void drain_wakeups();
  // Polls wake_fd() for up to `timeout`, then drains it (for a loop with nothing else to watch).
  void wait_until_woken(std::chrono::milliseconds timeout);

 private:
  std::atomic<StopLevel> level_{StopLevel::none};
  std::atomic<bool> abort_{false};
  std::atomic<int> first_signal_{0};
  std::atomic<bool> reload_{false};
  std::atomic<bool> status_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int wake_fd_;
};

class SignalWatcher {
 public:
  explicit SignalWatcher(RunControl& control);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  RunControl& control_;
  std::thread thread_;
};

}  // namespace cbm
