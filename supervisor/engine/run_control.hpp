// RunControl: the run's stop state and the requests from outside it (a library caller, or the CLI's
// signals), shared by the loop that drives the run and whoever asks it to stop. Each change wakes both
// kinds of waiter: the engine's loop polling wake_fd() (an eventfd it drains with drain_wakeups()) and
// a monitor's pause() between rounds (a condition variable).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace cbm {

enum class StopLevel { none, drain, now };

class RunControl {
 public:
  RunControl();
  ~RunControl();
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  // A stop asked for from outside the run: the run is reported as interrupted (by `signal`, 0 when
  // none carried it). A drain after a drain escalates to an immediate stop when `escalate` (a second
  // TERM/INT).
  void interrupt(StopLevel level, int signal, bool escalate);
  // A TERM/INT: the first asks for a drain, the second for an immediate stop.
  void on_stop_signal(int signal) { interrupt(StopLevel::drain, signal, true); }
  // Escalates to an immediate stop (the drain grace ran out, or the run must abort).
  void stop_now();
  void request_drain();
  void request_reload() { reload_.store(true); notify(); }
  void request_status() { status_.store(true); notify(); }

  StopLevel level() const { return level_.load(); }
  bool stopping() const { return level() != StopLevel::none; }
  int first_signal() const { return first_signal_.load(); }  // 0 when no signal arrived
  bool interrupted() const { return interrupted_.load(); }
  bool take_reload() { return reload_.exchange(false); }
  bool take_status() { return status_.exchange(false); }

  // Sleeps for `d` unless a stop is requested first (true if stopping); answers each status request
  // (SIGUSR1) that comes meanwhile with `on_status`, at once (a monitor's pause between rounds).
  bool pause(std::chrono::steady_clock::duration d, const std::function<void()>& on_status);

  // Wakes the driving loop and a pause() between rounds (a signal's request, an open topic source's
  // new topics).
  void notify();
  // Wakes the driving loop only (a transport's thread with an outcome for it).
  void wake();
  int wake_fd() const { return wake_fd_; }
  void drain_wakeups();
  // Polls wake_fd() for up to `timeout`, then drains it (for a loop with nothing else to watch).
  void wait_until_woken(std::chrono::milliseconds timeout);

 private:
  std::atomic<StopLevel> level_{StopLevel::none};
  std::atomic<int> first_signal_{0};
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> reload_{false};
  std::atomic<bool> status_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int wake_fd_;
};

}  // namespace cbm
