#include "event_loop_transport.hpp"

#include <algorithm>

namespace cbm {

using std::chrono::milliseconds;

EventLoopTransport::EventLoopTransport(const RunConfig& config, RunControl& control)
    : control_(control),
      protocol_(config.client),
      steps_(config.pipeline),
      http_(config.client.http, static_cast<std::size_t>(config.concurrency), control.wake_fd()),
      slots_(static_cast<std::size_t>(config.concurrency)) {
  finished_.reserve(slots_.size());
}

void EventLoopTransport::start(std::size_t slot, const Task& task, Clock::time_point deadline) {
  Slot& s = slots_[slot];
  s.attempt.emplace(steps_.begin(task));
  s.deadline = deadline;
  send_next(slot);
}

void EventLoopTransport::send_next(std::size_t slot) {
  Slot& s = slots_[slot];
  auto request = s.attempt->next_request();
  if (!request) {
    ended_.add(slot, s.attempt->take_outcome());
    s.attempt.reset();
    return;
  }
  s.endpoint = endpoint_of(*request);
  http_.start(slot, protocol_.prepare(*request), time_until(s.deadline));
}

// The transfer is abandoned; the steps that did finish still count (their usage was paid for).
void EventLoopTransport::cancel(std::size_t slot, CancelCause /*cause*/) {
  Slot& s = slots_[slot];
  if (!s.attempt) return;
  http_.cancel(slot);
  AttemptOutcome ended = s.attempt->take_outcome();
  ended.error.emplace();  // the engine names it (timeout or stop)
  ended.error->kind = ErrorKind::cancelled;
  ended_.add(slot, std::move(ended));
  s.attempt.reset();
}

void EventLoopTransport::wait(Clock::time_point until, AttemptSink& sink) {
  if (ended_.empty()) {
    const auto wait = std::max(milliseconds::zero(), std::chrono::ceil<milliseconds>(until - Clock::now()));
    if (http_.wait(wait)) control_.drain_wakeups();
    http_.take_finished(finished_);
    for (auto& f : finished_) {
      Slot& s = slots_[f.slot];
      s.attempt->on_answer(protocol_.interpret(s.endpoint, f.result));
      send_next(f.slot);
    }
  }
  delivering_.swap(ended_);
  delivering_.deliver(sink);
}

}  // namespace cbm
