// EventLoopTransport (--mode asyncio): every attempt on one thread, the engine's, over one curl_multi
// loop (AttemptLoop: reused handles, keep-alive, HTTP/2 multiplexing where offered). wait() is the
// loop's epoll wait, which also watches the run's control eventfd. What it cannot survive, by nature:
// it is a thread of the supervisor, so a crash anywhere takes the run (the journal keeps what finished).
#pragma once

#include <vector>

#include "attempt_loop.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "transport.hpp"

namespace cbm {

class EventLoopTransport final : public Transport {
 public:
  EventLoopTransport(const RunConfig& config, RunControl& control);

  std::size_t slots() const override { return loop_.slots(); }
  std::string_view slot_label() const override { return "a"; }
  void start(std::size_t slot, const Task& task, Clock::time_point deadline) override;
  void cancel(std::size_t slot, CancelCause cause) override;
  void wait(Clock::time_point until, AttemptSink& sink) override;

 private:
  RunControl& control_;
  AttemptLoop loop_;
  std::vector<AttemptLoop::Ended> ended_;  // reused by wait()
};

}  // namespace cbm
