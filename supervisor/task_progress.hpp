// TaskProgress: one task between its first attempt and its terminal record, and the record itself.
// Shared by every executor, so a result means the same thing whatever ran it.
#pragma once

#include "task.hpp"

namespace cbm {

class TaskProgress {
 public:
  explicit TaskProgress(Task task) : task_(std::move(task)) {}

  // Call when an attempt starts (numbers the attempt and stamps the task's start on the first one).
  const Task& start_attempt();
  // Call with what an attempt produced (a crash or timeout is an outcome with that error).
  void end_attempt(const AttemptOutcome& outcome);

  TaskResult finish(TaskStatus status, AttemptOutcome last, int worker) const;
  // A cancelled record: the run stopped before the task ended. `last_error` (if any) is kept.
  TaskResult cancel(std::string why, int worker) const;

  const Task& task() const { return task_; }
  int attempts() const { return attempts_; }
  const std::optional<ApiError>& last_error() const { return last_error_; }

 private:
  Task task_;
  int attempts_ = 0;
  WallClock::time_point started_{};
  Clock::time_point started_mono_{};
  Usage usage_;
  std::optional<ApiError> last_error_;
};

}  // namespace cbm
