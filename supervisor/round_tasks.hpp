// RoundTasks: the tasks of the round in progress, for an executor driven by one loop (multiprocessing,
// asyncio): read from the topic source ahead of the slots, ready to run, or waiting to retry. It owns
// what those executors share: reading ahead (with --resume's skips and open sources), the retry
// policy's verdict on a failed attempt, terminal records, and the sweep that cancels what waits when
// the run stops. The executor owns its slots and decides when a ready task starts. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <variant>

#include "logger.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "run_ledger.hpp"
#include "task_progress.hpp"
#include "topic_source.hpp"

namespace cbm {

// The retry policy's verdict on a failed attempt of `task`, as every executor enacts it: the failure
// is logged ("[<slot_label><slot>] task N attempt K failed ..."), a run-fatal error aborts the run.
// Returns the task's terminal record (failed; cancelled when an immediate stop ended the attempt), or
// how long to wait before the next attempt. (RoundTasks schedules that wait as a timer; the threading
// executor's threads wait it out themselves.)
std::variant<TaskResult, Clock::duration> judge_failure(const RetryPolicy& policy, RunLedger& ledger,
                                                        RunControl& control, Logger& log,
                                                        std::string_view slot_label, int slot,
                                                        const TaskProgress& task, AttemptOutcome outcome,
                                                        double jitter);

class RoundTasks {
 public:
  using TaskIndex = std::uint64_t;  // the task's id

  // `slot_label` prefixes a slot's number in log lines ("w" for a worker, "a" for an event-loop slot).
  RoundTasks(const RunConfig& config, RunLedger& ledger, RunControl& control, Logger& log, std::string slot_label);

  void begin(std::uint32_t round, TopicSource& source);
  // Ends the round; returns how many topics it had.
  std::size_t end();
  // True once the source is out and every task read has its terminal record.
  bool done() const { return source_done_ && tasks_.empty(); }
  // True once the source is out: every task of the round has been read.
  bool source_done() const { return source_done_; }

  // Reads topics until `slots` plus the read-ahead (--batch-size) are held. An open source (the
  // service's queue) is read only as slots free up, so its own order decides what runs next.
  void refill(std::size_t slots);
  // Retries whose time has come join the ready queue.
  void promote_due(Clock::time_point now);

  bool has_ready() const { return !ready_.empty(); }
  std::size_t ready_count() const { return ready_.size(); }
  std::size_t waiting_count() const { return retry_at_.size(); }
  std::optional<Clock::time_point> next_retry() const;
  TaskIndex pop_ready();           // precondition: has_ready()
  void push_front(TaskIndex task);  // a task taken that could not start after all

  TaskProgress& at(TaskIndex task) { return tasks_.at(task); }

  // The task's terminal record.
  void finish(TaskIndex task, TaskResult result);
  // An attempt ended: a success is the task's record, a failure goes to after_failure().
  void conclude(TaskIndex task, AttemptOutcome outcome, int slot);
  // An attempt failed: by the retry policy the task fails, aborts the run (run-fatal), is cancelled
  // (the run is stopping), or waits to retry.
  void after_failure(TaskIndex task, AttemptOutcome outcome, int slot);
  // Every task not running (ready, waiting to retry, not read yet) gets a cancelled record.
  void cancel_waiting(const std::string& why);

  // The run-wide stop rules, once per turn of the loop: a run-fatal error stops the run at once; a
  // drain (TERM/INT) cancels what waits and, after --drain-grace, becomes an immediate stop, which
  // cancels what waits too. True when the executor must stop what runs now.
  bool apply_stop_rules();
  // When the drain grace ends (the loop wakes for it), if a drain is on.
  std::optional<Clock::time_point> drain_deadline() const { return drain_deadline_; }

 private:
  const RunConfig& config_;
  RunLedger& ledger_;
  RunControl& control_;
  Logger& log_;
  const std::string slot_label_;
  const std::size_t read_ahead_;
  std::mt19937_64 rng_;  // retry jitter

  std::uint32_t round_ = 0;
  TopicSource* source_ = nullptr;
  bool source_done_ = true;
  std::size_t planned_ = 0;
  std::unordered_map<TaskIndex, TaskProgress> tasks_;
  std::deque<TaskIndex> ready_;
  std::multimap<Clock::time_point, TaskIndex> retry_at_;
  std::optional<Clock::time_point> drain_deadline_;
};

}  // namespace cbm
