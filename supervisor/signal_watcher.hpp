// SignalWatcher: the CLI's signals, forwarded to the executor (the library itself touches no signal).
//
// Blocks TERM, INT, HUP and USR1 in the calling thread — construct it in main() before any other
// thread exists, so every thread inherits the mask — and receives them with sigwait() on a thread of
// its own; no code runs in signal-handler context. TERM/INT become stop_by_signal (drain, then stop
// now), HUP reload_topics, USR1 log_status.
#pragma once

#include <thread>

#include "concurrent_bigmodel/executor.hpp"

namespace cbm {

class SignalWatcher {
 public:
  explicit SignalWatcher(concurrent_bigmodel::Executor& executor);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  concurrent_bigmodel::Executor& executor_;
  std::thread thread_;
};

}  // namespace cbm
