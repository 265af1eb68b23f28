#include "task_progress.hpp"

namespace cbm {

std::string cancel_reason(CancelPoint point, bool aborted) {
  std::string why = aborted ? "cancelled: the run was aborted " : "cancelled: the run was stopped ";
  switch (point) {
    case CancelPoint::before_start:
      return why + "before the task started";
    case CancelPoint::before_retry:
      return why + "before the task's next attempt";
    case CancelPoint::during_attempt:
      return why + "during the attempt";
  }
  return why;
}

const Task& TaskProgress::start_attempt(Clock::time_point now) {
  if (attempts_ == 0) {
    started_ = WallClock::now();
    started_mono_ = now;
  }
  task_.attempt = ++attempts_;
  return task_;
}

void TaskProgress::end_attempt(const AttemptOutcome& outcome) {
  for (const auto& step : outcome.steps) usage_ += step.usage;
  // A cancel is the run's doing, not the attempt's: the record keeps the last error of the task's own.
  if (outcome.ok() || outcome.error->kind != ErrorKind::cancelled) last_error_ = outcome.error;
}

TaskResult TaskProgress::finish(TaskStatus status, AttemptOutcome last, int worker, Clock::time_point now) const {
  TaskResult r;
  r.id = task_.id;
  r.round = task_.round;
  r.topic = task_.topic;
  r.fields = task_.fields;
  r.status = status;
  r.analysis = std::move(last.analysis);
  r.sources = std::move(last.sources);
  r.steps = std::move(last.steps);
  r.error = std::move(last.error);
  r.attempts = attempts_;
  r.worker = worker;
  r.usage = usage_;
  r.finished = WallClock::now();
  r.started = attempts_ > 0 ? started_ : r.finished;
  if (attempts_ > 0) {
    r.execution_time = std::chrono::duration_cast<std::chrono::milliseconds>(now - started_mono_);
  }
  return r;
}

TaskResult TaskProgress::cancel(CancelPoint point, bool aborted, int worker, Clock::time_point now) const {
  AttemptOutcome last;
  ApiError e;
  e.kind = ErrorKind::cancelled;
  e.error_class = ErrorClass::task_fatal;
  e.message = cancel_reason(point, aborted);
  if (last_error_) e.message += " (last attempt: " + last_error_->describe() + ")";
  last.error = std::move(e);
  return finish(TaskStatus::cancelled, std::move(last), worker, now);
}

}  // namespace cbm
