// RunObserver: what happens during a run, for whoever watches it (metrics, tracing, a library
// user's callback). Executors report attempts, restarts and limit changes; the ledger reports
// terminal records and rounds, one call at a time, outside its lock (record_outbox.hpp). Calls come
// from the executor's threads (several at once in threading mode), so observers must be thread-safe,
// and fast: they run on the critical path.
#pragma once

#include <optional>
#include <vector>

#include "task.hpp"

namespace cbm {

class RunObserver {
 public:
  virtual ~RunObserver() = default;

  // An attempt of `task` begins on worker slot `worker` (task.attempt is its number).
  virtual void attempt_started(const Task& /*task*/, int /*worker*/) {}
  // It ended: succeeded, failed (an API error, a timeout, a worker's crash), or was cancelled by a
  // stop. Every started attempt ends exactly once.
  virtual void attempt_ended(const Task& /*task*/, const AttemptOutcome& /*outcome*/, int /*worker*/) {}
  // A task's terminal record (every task gets exactly one, duplicates and cancelled ones included).
  virtual void task_finished(const TaskResult& /*result*/) {}
  // A worker died unexpectedly and its slot will be restarted.
  virtual void worker_restarted(int /*worker*/) {}
  // The adaptive in-flight limit moved.
  virtual void limit_changed(int /*effective*/) {}
  virtual void round_finished(std::uint32_t /*round*/) {}
  // The platform's usage cap paused dispatch until `until` (wall clock); nullopt: dispatch resumed.
  virtual void quota_paused(std::optional<WallClock::time_point> /*until*/) {}
};

// Fans every call out to several observers, in the order they were added; each must outlive the list.
class ObserverList final : public RunObserver {
 public:
  void add(RunObserver& o) { observers_.push_back(&o); }
  bool empty() const { return observers_.empty(); }

  void attempt_started(const Task& t, int w) override {
    for (auto& o : observers_) o->attempt_started(t, w);
  }
  void attempt_ended(const Task& t, const AttemptOutcome& a, int w) override {
    for (auto& o : observers_) o->attempt_ended(t, a, w);
  }
  void task_finished(const TaskResult& r) override {
    for (auto& o : observers_) o->task_finished(r);
  }
  void worker_restarted(int w) override {
    for (auto& o : observers_) o->worker_restarted(w);
  }
  void limit_changed(int l) override {
    for (auto& o : observers_) o->limit_changed(l);
  }
  void round_finished(std::uint32_t r) override {
    for (auto& o : observers_) o->round_finished(r);
  }
  void quota_paused(std::optional<WallClock::time_point> until) override {
    for (auto& o : observers_) o->quota_paused(until);
  }

 private:
  std::vector<RunObserver*> observers_;
};

}  // namespace cbm
