#include "round_tasks.hpp"

#include <cstdio>
#include <utility>

#include "retry_policy.hpp"

namespace cbm {

RoundTasks::RoundTasks(const RunConfig& config, RunLedger& ledger, RunControl& control, Logger& log,
                       std::string slot_label)
    : config_(config),
      ledger_(ledger),
      control_(control),
      log_(log),
      slot_label_(std::move(slot_label)),
      read_ahead_(config.batch_size > 0 ? static_cast<std::size_t>(config.batch_size)
                                        : 4 * static_cast<std::size_t>(config.concurrency)),
      rng_(std::random_device{}()) {}

void RoundTasks::begin(std::uint32_t round, TopicSource& source) {
  round_ = round;
  source_ = &source;
  source_done_ = false;
  planned_ = 0;
  tasks_.clear();
  ready_.clear();
  retry_at_.clear();
  drain_deadline_.reset();
}

std::size_t RoundTasks::end() {
  source_ = nullptr;
  return planned_;
}

void RoundTasks::refill(std::size_t slots) {
  const std::size_t window = slots + (source_->open() ? 0 : read_ahead_);
  while (!source_done_ && tasks_.size() < window && !control_.stopping()) {
    const bool still_open = source_->open();  // asked first: topics added after next() still count
    auto next = source_->next();
    if (!next) {
      source_done_ = !still_open;
      break;
    }
    ++planned_;
    if (ledger_.has(round_, next->id)) continue;  // finished before a --resume
    tasks_.emplace(next->id, TaskProgress(Task{next->id, round_, std::move(next->topic), 0}));
    ready_.push_back(next->id);
  }
}

void RoundTasks::promote_due(Clock::time_point now) {
  while (!retry_at_.empty() && retry_at_.begin()->first <= now) {
    ready_.push_back(retry_at_.begin()->second);
    retry_at_.erase(retry_at_.begin());
  }
}

std::optional<Clock::time_point> RoundTasks::next_retry() const {
  if (retry_at_.empty()) return std::nullopt;
  return retry_at_.begin()->first;
}

RoundTasks::TaskIndex RoundTasks::pop_ready() {
  const TaskIndex i = ready_.front();
  ready_.pop_front();
  return i;
}

void RoundTasks::push_front(TaskIndex task) { ready_.push_front(task); }

void RoundTasks::finish(TaskIndex task, TaskResult result) {
  ledger_.record(std::move(result));
  tasks_.erase(task);
}

std::variant<TaskResult, Clock::duration> judge_failure(const RetryPolicy& policy, RunLedger& ledger,
                                                        RunControl& control, Logger& log,
                                                        std::string_view slot_label, int slot,
                                                        const TaskProgress& task, AttemptOutcome outcome,
                                                        double jitter) {
  const ApiError& error = *outcome.error;
  log.warn("[" + std::string(slot_label) + std::to_string(slot) + "] task " + std::to_string(task.task().id) +
           " attempt " + std::to_string(task.attempts()) + " failed (" + std::string(to_string(error.error_class)) +
           ", " + std::string(to_string(error.kind)) + "): " + error.describe());
  if (error.kind == ErrorKind::cancelled) return task.cancel("cancelled by an immediate stop", slot);
  const RetryDecision decision = decide_retry(policy, error, task.attempts(), jitter);
  if (std::holds_alternative<AbortRun>(decision)) {
    ledger.mark_aborted("run-fatal API error: " + error.describe());
    control.stop_now();
  }
  if (const auto* retry = std::get_if<RetryAfter>(&decision)) return retry->delay;
  return task.finish(TaskStatus::failed, std::move(outcome), slot);
}

void RoundTasks::conclude(TaskIndex i, AttemptOutcome outcome, int slot) {
  if (!outcome.ok()) {
    after_failure(i, std::move(outcome), slot);
    return;
  }
  finish(i, tasks_.at(i).finish(TaskStatus::succeeded, std::move(outcome), slot));
}

void RoundTasks::after_failure(TaskIndex i, AttemptOutcome outcome, int slot) {
  TaskProgress& t = tasks_.at(i);
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  auto verdict = judge_failure(config_.retry, ledger_, control_, log_, slot_label_, slot, t, std::move(outcome),
                               jitter(rng_));
  if (auto* record = std::get_if<TaskResult>(&verdict)) {
    finish(i, std::move(*record));
  } else if (control_.stopping()) {
    finish(i, t.cancel("cancelled: the run stopped before a retry", slot));
  } else {
    retry_at_.emplace(Clock::now() + std::get<Clock::duration>(verdict), i);
  }
}

bool RoundTasks::apply_stop_rules() {
  if (ledger_.abort_reason() && !control_.stopping()) control_.stop_now();
  const StopLevel level = control_.level();
  if (level == StopLevel::drain && !drain_deadline_) {
    drain_deadline_ = Clock::now() + config_.drain_grace;
    char grace[32];
    std::snprintf(grace, sizeof grace, "%.3g s", static_cast<double>(config_.drain_grace.count()) / 1000.0);
    log_.info(std::string("draining: no new tasks; in-flight tasks have ") + grace + " to finish");
    cancel_waiting("cancelled: the run was stopped before the task started");
  }
  if (level == StopLevel::drain && Clock::now() >= *drain_deadline_) {
    log_.warn("drain grace over: stopping in-flight tasks now");
    control_.stop_now();
  }
  if (control_.level() != StopLevel::now) return false;
  cancel_waiting(ledger_.abort_reason() ? "cancelled: the run was aborted" : "cancelled: the run was stopped");
  return true;
}

void RoundTasks::cancel_waiting(const std::string& why) {
  const std::deque<TaskIndex> ready = std::exchange(ready_, {});
  for (TaskIndex i : ready) finish(i, tasks_.at(i).cancel(why, -1));
  const auto waiting = std::exchange(retry_at_, {});
  for (const auto& [when, i] : waiting) finish(i, tasks_.at(i).cancel(why, -1));
  // Topics not read yet get their terminal record too: nothing is dropped.
  while (source_ != nullptr && !source_done_) {
    auto next = source_->next();
    if (!next) {
      source_done_ = true;
      break;
    }
    ++planned_;
    if (!ledger_.has(round_, next->id)) {
      ledger_.record(TaskProgress(Task{next->id, round_, std::move(next->topic), 0}).cancel(why, -1));
    }
  }
}

}  // namespace cbm
