// AttemptEngine: the one scheduler of task attempts, for every mode and for the service. It owns the
// rules — the task book (read-ahead, --resume skips), admission (ConcurrencyGate: the adaptive limit,
// --rpm, --tpm), attempt deadlines, the retry verdict and backoff, --delay between a slot's tasks,
// the drain and stop rules, the cancel sweep and every terminal record — and drives a Transport
// (transport.hpp) that only starts, cancels and reports attempts. So every mode writes the same
// records for the same events. docs/architecture.md follows one topic through it.
//
// The loop, one screen (like gunicorn's arbiter):
//
//   fire_due_timers -> apply_stop_rules -> refill -> dispatch -> retire_idle -> wait (transport)
//
// Every wake-up it needs is a timer in one TimerHeap (retries, --delay, admissions, the drain grace,
// the end of a usage cap's pause)
// or a running attempt's deadline (kept in its slot: an attempt that ends in time leaves nothing
// behind); the transport's wait() sleeps until the earliest, a control wake-up or an event.
// Time comes from the injected RunClock. Single-threaded: the transport reports on this thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "budget.hpp"
#include "concurrency_gate.hpp"
#include "crash_attribution.hpp"
#include "round_executor.hpp"
#include "task_book.hpp"
#include "timer_heap.hpp"
#include "transport.hpp"

namespace cbm {

// What a drain (the first TERM/INT) lets finish.
enum class DrainPolicy {
  in_flight,  // the CLI and the library: only the running attempts; what waits is cancelled at once
  accepted,   // the service: everything its closed queue still holds (accepted requests are answered)
};

class AttemptEngine final : public RoundExecutor, private AttemptSink {
 public:
  AttemptEngine(const ExecutorContext& run, std::unique_ptr<Transport> transport,
                DrainPolicy drain = DrainPolicy::in_flight);
  ~AttemptEngine() override;

  std::size_t run_round(std::uint32_t round, TopicSource& topics) override;

 private:
  using TaskId = TaskBook::TaskId;

  struct Slot {
    std::optional<TaskId> task;                      // the running attempt's task
    std::optional<ConcurrencyGate::Permit> permit;   // its place (limit and rate caps)
    std::optional<CancelCause> cancelled;            // the engine ended it early, and why
    Clock::time_point deadline{};                    // the running attempt's --timeout
  };
  struct Timer {
    enum class Kind { retry, slot_free, admission, drain_end, give_up, quota_resume } kind;
    std::uint64_t target = 0;  // the slot (slot_free) or the task (retry)
  };

  void loop();
  void fire_due_timers();
  void expire_attempts(Clock::time_point now);
  void apply_stop_rules();
  void refill();
  void dispatch();
  void retire_if_done();
  void wait();

  bool may_dispatch() const;
  std::optional<std::size_t> take_startable_slot();
  void start_attempt(std::size_t slot, TaskId task, ConcurrencyGate::Permit permit);
  void free_slot(std::size_t slot);
  void after_failure(TaskId task, AttemptOutcome outcome, std::size_t slot);
  // A usage cap (wait_until with a reset time): dispatch pauses for every task until the reset; returns
  // when the waiting task may run again.
  Clock::time_point pause_for_quota(const ApiError& error);
  bool paused() const { return paused_until_wall_.has_value(); }
  // Dispatch waits until `until` (the wall clock's), for `reason` ("usage cap", "budget").
  void pause_until(WallClock::time_point until, const char* reason);
  void end_pause_if_due();
  // --max-tokens-total / --max-cost (budget.hpp): true while the budget holds dispatch back. Reached,
  // a daily budget pauses until local midnight; a run's stops dispatch for good (stop_for_budget).
  bool budget_holds_dispatch();
  void stop_for_budget();
  // The run cannot go on (a source or the transport threw): abort, end what runs, record everything.
  void fail_run(const std::string& what);
  void abandon_running();

  // AttemptSink
  void attempt_ended(std::size_t slot, AttemptOutcome outcome) override;
  void worker_restarted(std::size_t slot) override;
  void attempt_restarted(std::size_t slot) override;
  void transport_failed(std::string reason) override;

  void log_status();
  ExecutorGauges gauges() const;
  std::string slot_name(std::size_t slot) const;

  std::unique_ptr<Transport> transport_;
  const DrainPolicy drain_policy_;
  ConcurrencyGate gate_;
  TaskBook book_;
  TimerHeap<Timer> timers_;
  std::vector<Slot> slots_;
  std::deque<std::size_t> idle_;  // free slots, the most recently freed first
  std::size_t running_ = 0;
  std::uint64_t attempts_started_ = 0;  // in the whole run
  std::mt19937_64 rng_;           // retry jitter
  CrashAttribution crashes_;
  bool last_round_ = false;
  bool stopped_now_ = false;      // the stop rules ended the running attempts (once a round)
  bool admission_timer_set_ = false;
  // A usage cap's pause: no attempt starts before pause_end_ (the engine's clock); the reset as the
  // platform named it (plus the margin) for the status line and metrics. Outlives rounds.
  Clock::time_point pause_end_{};
  std::optional<WallClock::time_point> paused_until_wall_;
  const char* pause_reason_ = "usage cap";
  BudgetMeter budget_;
  bool budget_seeded_ = false;   // the records --resume restored are counted (at the first round)
  bool budget_stopped_ = false;  // the run's budget was reached: nothing new starts, in-flight finish
  std::optional<Clock::time_point> drain_deadline_;
  bool failing_ = false;  // in fail_run: attempts still running after the drain grace are abandoned
  // No running attempt's deadline is before this (recomputed when one passes).
  Clock::time_point next_deadline_ = Clock::time_point::max();  // fail_run: when attempts still running are abandoned
  // When the gate's shared leases (a fleet's limit) want renewing; min(): at the first turn.
  Clock::time_point next_maintain_ = Clock::time_point::min();
};

}  // namespace cbm
