#include "run_control.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <system_error>

namespace cbm {
namespace {

// SIGRTMIN+1 is private to this file: the destructor uses it to end the watcher's sigwait().
int shutdown_signal() { return SIGRTMIN + 1; }

sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, shutdown_signal()}) sigaddset(&set, s);
  return set;
}

}  // namespace

RunControl::RunControl() : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

RunControl::~RunControl() { ::close(wake_fd_); }

void RunControl::on_stop_signal(int signal) {
  int none = 0;
  first_signal_.compare_exchange_strong(none, signal);
  if (level_.load() == StopLevel::none) {
    request_drain();
  } else {
    stop_now();
  }
}

void RunControl::request_drain() {
  StopLevel expected = StopLevel::none;
  level_.compare_exchange_strong(expected, StopLevel::drain);
  notify();
}

void RunControl::stop_now() {
  level_.store(StopLevel::now);
  abort_.store(true);
  notify();
}

bool RunControl::wait_for(std::chrono::steady_clock::duration d) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, d, [this] { return stopping(); });
}

void RunControl::notify() {
  {
    // Taking the lock orders this notify after a waiter's predicate check: no lost wake-up.
    std::lock_guard lock(mu_);
  }
  cv_.notify_all();
  const std::uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: a wake-up is pending anyway.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void RunControl::drain_wakeups() {
  std::uint64_t count = 0;
  [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
}

void RunControl::wait_until_woken(std::chrono::milliseconds timeout) {
  pollfd p{wake_fd_, POLLIN, 0};
  const int ms = static_cast<int>(std::min<std::int64_t>(timeout.count(), 1 << 30));
  if (::poll(&p, 1, std::max(ms, 0)) > 0) drain_wakeups();
}

SignalWatcher::SignalWatcher(RunControl& control) : control_(control) {
  const sigset_t set = watched_signals();
  if (int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  }
  thread_ = std::thread([this, set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == shutdown_signal()) return;
      switch (sig) {
        case SIGTERM:
        case SIGINT:
          control_.on_stop_signal(sig);
          break;
        case SIGHUP:
          control_.request_reload();
          break;
        case SIGUSR1:
          control_.request_status();
          break;
        default:
          break;
      }
    }
  });
}

SignalWatcher::~SignalWatcher() {
  pthread_kill(thread_.native_handle(), shutdown_signal());
  thread_.join();
}

}  // namespace cbm
