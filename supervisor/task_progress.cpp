#include "task_progress.hpp"

namespace cbm {

const Task& TaskProgress::start_attempt() {
  if (attempts_ == 0) {
    started_ = WallClock::now();
    started_mono_ = Clock::now();
  }
  task_.attempt = ++attempts_;
  return task_;
}

void TaskProgress::end_attempt(const AttemptOutcome& outcome) {
  for (const auto& step : outcome.steps) usage_ += step.usage;
  last_error_ = outcome.error;
}

TaskResult TaskProgress::finish(TaskStatus status, AttemptOutcome last, int worker) const {
  TaskResult r;
  r.id = task_.id;
  r.round = task_.round;
  r.topic = task_.topic;
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
    r.execution_time = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_mono_);
  }
  return r;
}

TaskResult TaskProgress::cancel(std::string why, int worker) const {
  AttemptOutcome last;
  ApiError e;
  e.kind = ErrorKind::cancelled;
  e.error_class = ErrorClass::task_fatal;
  e.message = std::move(why);
  if (last_error_) e.message += " (last attempt: " + last_error_->describe() + ")";
  last.error = std::move(e);
  return finish(TaskStatus::cancelled, std::move(last), worker);
}

}  // namespace cbm
