#include "attempt_loop.hpp"

#include <algorithm>

namespace cbm {

AttemptLoop::AttemptLoop(const ClientConfig& client, const PipelineConfig& pipeline, std::size_t slots, int wake_fd)
    : protocol_(client), steps_(pipeline), http_(client.http, slots, wake_fd), slots_(slots) {
  finished_.reserve(slots);
}

void AttemptLoop::start(std::size_t slot, const Task& task, Clock::time_point deadline) {
  Slot& s = slots_.at(slot);
  s.attempt.emplace(steps_.begin(task));
  s.deadline = deadline;
  send_next(slot);
}

void AttemptLoop::send_next(std::size_t slot) {
  Slot& s = slots_[slot];
  auto request = s.attempt->next_request();
  if (!request) {
    ended_.push_back(Ended{slot, s.attempt->take_outcome()});
    s.attempt.reset();
    return;
  }
  s.endpoint = endpoint_of(*request);
  http_.start(slot, protocol_.prepare(*request), time_until(s.deadline));
}

// The transfer is abandoned; the steps that did finish still count (their usage was paid for).
void AttemptLoop::cancel(std::size_t slot) {
  Slot& s = slots_.at(slot);
  if (!s.attempt) return;
  http_.cancel(slot);
  AttemptOutcome ended = s.attempt->take_outcome();
  ended.error.emplace();  // the caller names it (a timeout or a stop)
  ended.error->kind = ErrorKind::cancelled;
  ended_.push_back(Ended{slot, std::move(ended)});
  s.attempt.reset();
}

bool AttemptLoop::wait(std::chrono::milliseconds timeout) {
  if (!ended_.empty()) timeout = std::chrono::milliseconds::zero();
  const bool woken = http_.wait(timeout);
  http_.take_finished(finished_);
  for (auto& f : finished_) {
    Slot& s = slots_[f.slot];
    s.attempt->on_answer(protocol_.interpret(s.endpoint, f.result));
    send_next(f.slot);
  }
  return woken;
}

void AttemptLoop::take_ended(std::vector<Ended>& out) {
  out.clear();
  std::swap(out, ended_);
}

}  // namespace cbm
