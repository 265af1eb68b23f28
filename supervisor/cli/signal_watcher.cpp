#include "signal_watcher.hpp"

#include <pthread.h>

#include <csignal>
#include <system_error>
#include <utility>

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

SignalWatcher::SignalWatcher(SignalActions actions) : actions_(std::move(actions)) {
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
          actions_.stop(sig);
          break;
        case SIGHUP:
          actions_.reload();
          break;
        case SIGUSR1:
          actions_.status();
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
