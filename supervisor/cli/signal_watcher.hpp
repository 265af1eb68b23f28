// SignalWatcher: the CLI's signals, forwarded to what runs (the library itself touches no signal).
//
// Blocks TERM, INT, HUP and USR1 in the calling thread — construct it in main() before any other
// thread exists, so every thread inherits the mask — and receives them with sigwait() on a thread of
// its own; no code runs in signal-handler context. The actions run on that thread.
#pragma once

#include <functional>
#include <thread>

namespace cbm {

struct SignalActions {
  std::function<void(int signal)> stop;  // TERM, INT
  std::function<void()> reload;          // HUP
  std::function<void()> status;          // USR1
};

class SignalWatcher {
 public:
  explicit SignalWatcher(SignalActions actions);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  SignalActions actions_;
  std::thread thread_;
};

}  // namespace cbm
