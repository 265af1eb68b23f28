// TaskProgress: one task between its first attempt and its terminal record, and the record itself.
// Shared by every transport through the engine, so a result means the same thing whatever ran it.
// `now` is the engine's clock (execution times); the record's wall-clock stamps are the system's.
#pragma once

#include <string>

#include "task.hpp"

namespace cbm {

// Where a stop found a task that then gets a cancelled record: the reason says so, the same in every
// mode and in the service.
enum class CancelPoint {
  before_start,    // never attempted (ready, or not read yet)
  before_retry,    // between attempts, waiting to retry
  during_attempt,  // its attempt was running and was ended
};
// "cancelled: the run was stopped before the task started" (or "aborted", for a run-fatal stop).
std::string cancel_reason(CancelPoint point, bool aborted);

class TaskProgress {
 public:
  explicit TaskProgress(Task task) : task_(std::move(task)) {}

  // Call when an attempt starts (numbers the attempt and stamps the task's start on the first one).
  const Task& start_attempt(Clock::time_point now);
  // Call with what an attempt produced (a crash or timeout is an outcome with that error).
  void end_attempt(const AttemptOutcome& outcome);

  TaskResult finish(TaskStatus status, AttemptOutcome last, int worker, Clock::time_point now) const;
  // A cancelled record: the run stopped before the task ended. `last_error` (if any) is kept.
  TaskResult cancel(CancelPoint point, bool aborted, int worker, Clock::time_point now) const;

  const Task& task() const { return task_; }
  int attempts() const { return attempts_; }
  // Attempts that count against --max-retries: all but those whose failure was not the task's own
  // (a worker killed from outside; see crash_attribution.hpp) and those a usage cap stopped (the task
  // then waited for the cap's reset).
  int charged_attempts() const { return attempts_ - excused_ - quota_waits_; }
  int excused() const { return excused_; }
  void excuse_attempt() { ++excused_; }
  int quota_waits() const { return quota_waits_; }
  void count_quota_wait() { ++quota_waits_; }
  const std::optional<ApiError>& last_error() const { return last_error_; }

 private:
  Task task_;
  int attempts_ = 0;
  int excused_ = 0;
  int quota_waits_ = 0;
  WallClock::time_point started_{};
  Clock::time_point started_mono_{};
  Usage usage_;
  std::optional<ApiError> last_error_;
};

}  // namespace cbm
