#include "event_loop_transport.hpp"

#include <algorithm>

namespace cbm {

using std::chrono::milliseconds;

EventLoopTransport::EventLoopTransport(const RunConfig& config, RunControl& control)
    : control_(control),
      loop_(config.client, config.pipeline, static_cast<std::size_t>(config.concurrency), control.wake_fd()) {}

void EventLoopTransport::start(std::size_t slot, const Task& task, Clock::time_point deadline) {
  loop_.start(slot, task, deadline);
}

void EventLoopTransport::cancel(std::size_t slot, CancelCause /*cause*/) { loop_.cancel(slot); }

void EventLoopTransport::wait(Clock::time_point until, AttemptSink& sink) {
  const auto wait = std::max(milliseconds::zero(), std::chrono::ceil<milliseconds>(until - Clock::now()));
  if (loop_.wait(wait)) control_.drain_wakeups();
  loop_.take_ended(ended_);
  for (auto& e : ended_) sink.attempt_ended(e.slot, std::move(e.outcome));
}

}  // namespace cbm
