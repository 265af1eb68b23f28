#include "async_executor.hpp"

#include <algorithm>

namespace cbm {

using std::chrono::milliseconds;

AsyncExecutor::AsyncExecutor(const ExecutorContext& run)
    : RoundExecutor(run),
      protocol_(run.config.client),
      steps_(run.config.pipeline),
      http_(run.config.client.http, static_cast<std::size_t>(run.config.concurrency), run.control.wake_fd()),
      gate_(run.config.concurrency, run.config.rate, run.config.pipeline.search ? 2 : 1),
      slots_(static_cast<std::size_t>(run.config.concurrency)),
      tasks_(run.config, run.ledger, run.control, run.log, "a") {
  for (std::size_t i = 0; i < slots_.size(); ++i) idle_.push_back(i);
  finished_.reserve(slots_.size());
}

std::size_t AsyncExecutor::run_round(std::uint32_t round, TopicSource& topics) {
  tasks_.begin(round, topics);

  while (!tasks_.done()) {
    handle_control();
    tasks_.refill(slots_.size());
    dispatch();
    if (tasks_.done()) break;
    progress_.tick(gauges());
    wait_for_events();
    collect();
  }
  return tasks_.end();
}

// Signals and run-wide decisions: a drain stops dispatch and cancels what waits; an immediate stop
// (second signal, drain grace over, run-fatal error) abandons the transfers and cancels what runs.
void AsyncExecutor::handle_control() {
  if (control_.take_status()) log_status();
  if (tasks_.apply_stop_rules()) stop_all_now();
}

void AsyncExecutor::dispatch() {
  const auto now = Clock::now();
  tasks_.promote_due(now);
  if (control_.stopping()) return;
  while (tasks_.has_ready() && !idle_.empty() && slots_[idle_.front()].available_at <= now) {
    auto permit = gate_.try_acquire(now);
    if (!permit) return;
    const std::size_t slot = idle_.front();
    idle_.pop_front();
    const TaskIndex i = tasks_.pop_ready();
    slots_[slot].permit = std::move(permit);
    start_attempt(slot, i);
  }
}

void AsyncExecutor::wait_for_events() {
  const auto now = Clock::now();
  Clock::time_point next = now + progress_.next_due();
  // An idle slot's --delay matters only when a task could be dispatched to it (else: no busy wait).
  // Nor does the gate's next admission (a rate cap's), unless a slot is free by then; while the
  // in-flight limit binds, an attempt's end is what frees a place.
  if (tasks_.has_ready() && !idle_.empty() && !control_.stopping()) {
    if (const auto admission = gate_.next_admission(now)) {
      next = std::min(next, std::max(*admission, slots_[idle_.front()].available_at));
    }
  }
  if (const auto retry = tasks_.next_retry()) next = std::min(next, *retry);
  if (const auto drain = tasks_.drain_deadline()) next = std::min(next, *drain);
  const auto wait = std::max(milliseconds::zero(), std::chrono::ceil<milliseconds>(next - now));
  if (http_.wait(wait)) control_.drain_wakeups();
}

// Hands every finished exchange to its attempt, which either asks for its next step or is over.
void AsyncExecutor::collect() {
  http_.take_finished(finished_);
  for (auto& f : finished_) {
    Slot& s = slots_[f.slot];
    s.attempt->on_answer(protocol_.interpret(f.result));
    send_next(f.slot);
  }
}

void AsyncExecutor::start_attempt(std::size_t slot, TaskIndex i) {
  Slot& s = slots_[slot];
  const Task& task = tasks_.at(i).start_attempt();
  observer_.attempt_started(task, static_cast<int>(slot));
  s.task = i;
  s.attempt.emplace(steps_.begin(task));
  s.deadline = Clock::now() + config_.timeout;
  ++running_;
  send_next(slot);
}

void AsyncExecutor::send_next(std::size_t slot) {
  Slot& s = slots_[slot];
  auto request = s.attempt->next_request();
  if (!request) {
    end_attempt(slot);
    return;
  }
  const auto timeout = std::chrono::duration_cast<milliseconds>(s.deadline - Clock::now());
  http_.start(slot, protocol_.prepare(std::move(*request)), timeout);
}

void AsyncExecutor::end_attempt(std::size_t slot) {
  Slot& s = slots_[slot];
  AttemptOutcome outcome = s.attempt->take_outcome();
  const TaskIndex i = *s.task;
  const auto limit_change = gate_.release(*s.permit, outcome);
  release(slot);
  TaskProgress& t = tasks_.at(i);
  t.end_attempt(outcome);
  observer_.attempt_ended(t.task(), outcome, static_cast<int>(slot));
  if (limit_change) announce_limit(limit_change->from, limit_change->to, outcome.ok());
  tasks_.conclude(i, std::move(outcome), static_cast<int>(slot));
}

// The slot is free for its next task after --delay.
void AsyncExecutor::release(std::size_t slot) {
  Slot& s = slots_[slot];
  s.task.reset();
  s.attempt.reset();
  s.permit.reset();
  s.available_at = Clock::now() + config_.delay;
  idle_.push_back(slot);
  --running_;
}

// Abandons every transfer: each running attempt ends as cancelled, and so does its task.
void AsyncExecutor::stop_all_now() {
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    Slot& s = slots_[slot];
    if (!s.task) continue;
    http_.cancel(slot);
    const TaskIndex i = *s.task;
    AttemptOutcome stopped = s.attempt->take_outcome();  // the steps that did finish still count
    stopped.error = ApiError{};
    stopped.error->kind = ErrorKind::cancelled;
    stopped.error->error_class = ErrorClass::task_fatal;
    stopped.error->message = "the run was stopped during the attempt";
    gate_.release(*s.permit, stopped);
    release(slot);
    tasks_.at(i).end_attempt(stopped);
    observer_.attempt_ended(tasks_.at(i).task(), stopped, static_cast<int>(slot));
    tasks_.finish(i, tasks_.at(i).cancel("cancelled: the run was stopped during the attempt", static_cast<int>(slot)));
  }
}

ExecutorGauges AsyncExecutor::gauges() const {
  ExecutorGauges g;
  g.in_flight = running_;
  g.limit = gate_.limit();
  return g;
}

void AsyncExecutor::log_status() {
  log_.info("status: " + progress_.line(gauges()) + ", " + std::to_string(tasks_.ready_count()) + " queued, " +
            std::to_string(tasks_.waiting_count()) + " waiting to retry");
}

}  // namespace cbm
