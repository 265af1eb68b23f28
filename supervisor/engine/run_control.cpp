#include "run_control.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <system_error>

namespace cbm {

RunControl::RunControl() : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

RunControl::~RunControl() { ::close(wake_fd_); }

void RunControl::interrupt(StopLevel level, int signal, bool escalate) {
  if (signal != 0) {
    int none = 0;
    first_signal_.compare_exchange_strong(none, signal);
  }
  interrupted_.store(true);
  if (level == StopLevel::now || (escalate && level_.load() != StopLevel::none)) {
    stop_now();
  } else if (level == StopLevel::drain) {
    request_drain();
  }
}

void RunControl::request_drain() {
  StopLevel expected = StopLevel::none;
  level_.compare_exchange_strong(expected, StopLevel::drain);
  notify();
}

void RunControl::stop_now() {
  level_.store(StopLevel::now);
  notify();
}

bool RunControl::pause(std::chrono::steady_clock::duration d, const std::function<void()>& on_status) {
  const auto until = std::chrono::steady_clock::now() + d;
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping()) return true;
    if (status_.exchange(false)) {
      lock.unlock();
      on_status();
      lock.lock();
      continue;
    }
    if (!cv_.wait_until(lock, until, [this] { return stopping() || status_.load(); })) return false;
  }
}

void RunControl::notify() {
  {
    // Taking the lock orders this notify after a waiter's predicate check: no lost wake-up.
    std::lock_guard lock(mu_);
  }
  cv_.notify_all();
  wake();
}

void RunControl::wake() {
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

}  // namespace cbm
