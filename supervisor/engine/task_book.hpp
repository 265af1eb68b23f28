// TaskBook: the tasks of the round in progress, between the topic source and their terminal records:
// read ahead of the slots (--resume's finished topics skipped), ready to run, running, or waiting to
// retry. It knows nothing of time or of how attempts run: the engine (attempt_engine.hpp) moves tasks
// between those states and sets the timers. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "run_ledger.hpp"
#include "task_progress.hpp"
#include "topic_source.hpp"

namespace cbm {

class TaskBook {
 public:
  using TaskId = std::uint64_t;

  // `read_ahead`: topics held ready beyond the free slots (--batch-size).
  TaskBook(RunLedger& ledger, std::size_t read_ahead) : ledger_(ledger), read_ahead_(read_ahead) {}

  void begin(std::uint32_t round, TopicSource& source);
  // Ends the round; returns how many topics it had.
  std::size_t end();

  // True once the source is out and every task read has its terminal record.
  bool done() const { return source_done_ && tasks_.empty(); }
  // True once every task of the round has been read.
  bool source_done() const { return source_done_; }

  // Reads topics until `slots` plus the read-ahead are held. An open source (the service's queue) is
  // read only as slots free up, so its own order decides what runs next. A source that throws is
  // read no more (the exception goes on to the engine, which stops the run).
  void refill(std::size_t slots);

  bool has_ready() const { return !ready_.empty(); }
  std::size_t ready_count() const { return ready_.size(); }
  std::size_t waiting_count() const { return waiting_.size(); }
  TaskId pop_ready();                // precondition: has_ready()
  void wait_to_retry(TaskId task);   // its next attempt comes after a backoff
  // A retry's time has come: back to the ready queue (false if the task has ended meanwhile).
  bool retry_due(TaskId task);

  TaskProgress& at(TaskId task) { return tasks_.at(task); }

  // The task's terminal record.
  void finish(TaskId task, TaskResult result);
  // Every task read and not running (ready, waiting to retry) gets a cancelled record. The topics not
  // read yet are recorded as one range of ids (RunLedger::record_unread) when the source allows it
  // (TopicSource::unread_as_range), so a stop costs O(read-ahead), not O(input); otherwise (the
  // service's queue) they are read out now and each is cancelled.
  void cancel_waiting(bool aborted, Clock::time_point now);

 private:
  // The source's next topic, or nullopt (and the source marked done) at its end or when it throws.
  std::optional<TopicLine> read_next();

  RunLedger& ledger_;
  const std::size_t read_ahead_;
  std::uint32_t round_ = 0;
  TopicSource* source_ = nullptr;
  bool source_done_ = true;
  std::size_t planned_ = 0;
  std::uint64_t next_unread_id_ = 0;  // one past the last id read
  std::unordered_map<TaskId, TaskProgress> tasks_;  // node-based: a task's address is stable while it runs
  std::deque<TaskId> ready_;
  std::unordered_set<TaskId> waiting_;
};

}  // namespace cbm
