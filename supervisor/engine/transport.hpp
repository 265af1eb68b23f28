// Transport: how an attempt runs — in a worker process, on a thread, or on one event loop. The
// engine (attempt_engine.hpp) decides everything: which task, which slot, when, how long, what an
// outcome means. A transport only starts an attempt on a slot, ends one early when told, and reports
// back what happened, from inside wait(), the one place the engine's loop sleeps.
//
// Who calls what (all on the engine's thread):
//   engine -> prepare(slot), start(slot, task, deadline)   an idle slot takes an attempt
//   engine -> cancel(slot, cause)           end that attempt early; its outcome still comes back
//   engine -> wait(until, sink)             sleep until `until`, a wake-up (RunControl), or an event;
//                                           report the events to the sink before returning
//   transport -> sink.attempt_ended(...)    exactly once per started attempt, cancelled ones included
//   transport -> sink.worker_restarted(...) a slot's worker died on its own and will be replaced
//   transport -> sink.attempt_restarted(...) a slot's attempt starts over (its deadline too)
//   transport -> sink.transport_failed(...) the transport cannot go on (workers keep dying): abort
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "task.hpp"

namespace cbm {

// Why the engine ends an attempt early.
enum class CancelCause {
  timeout,  // its --timeout passed
  stop,     // the run stops now (a second signal, the drain grace over, a run-fatal error)
};

class AttemptSink {
 public:
  // Slot `slot`'s attempt ended with `outcome` (a crash, a timeout or a cancel is an outcome with
  // that error; an attempt that completed before a cancel reached it may still be a success).
  virtual void attempt_ended(std::size_t slot, AttemptOutcome outcome) = 0;
  virtual void worker_restarted(std::size_t slot) = 0;
  // Slot `slot`'s attempt starts over, from its first step, and its --timeout with it (a worker it
  // shared with other attempts died, and it runs again alone).
  virtual void attempt_restarted(std::size_t slot) = 0;
  virtual void transport_failed(std::string reason) = 0;

 protected:
  ~AttemptSink() = default;
};

// Attempts a transport saw end, held until its wait() hands them to the sink (a transport reports only
// from wait(): never from start() or cancel(), which the engine calls mid-turn).
class EndedAttempts {
 public:
  void add(std::size_t slot, AttemptOutcome outcome) { ended_.emplace_back(slot, std::move(outcome)); }
  bool empty() const { return ended_.empty(); }
  // Hands every one to `sink`, in the order they ended, and forgets them.
  void deliver(AttemptSink& sink) {
    for (auto& [slot, outcome] : ended_) sink.attempt_ended(slot, std::move(outcome));
    ended_.clear();
  }
  void swap(EndedAttempts& other) noexcept { ended_.swap(other.ended_); }

 private:
  std::vector<std::pair<std::size_t, AttemptOutcome>> ended_;
};

class Transport {
 public:
  using Clock = std::chrono::steady_clock;

  virtual ~Transport() = default;

  // How many attempts may run at once (the slots are 0..slots()-1).
  virtual std::size_t slots() const = 0;
  // Prefixes a slot's number in log lines: "w" (worker process), "t" (thread), "a" (event loop).
  virtual std::string_view slot_label() const = 0;

  // Gets idle `slot` ready to take an attempt now, if it can be (process mode starts its worker here,
  // so a failed start costs no attempt). False while its worker is being replaced, after a failed
  // start, or when this turn's budget of worker starts is spent (wait() then returns when it may be).
  virtual bool prepare(std::size_t /*slot*/) { return true; }
  // Starts an attempt of `task` on `slot` (idle, and prepared); it must end by `deadline` (the
  // transport's own timeouts, or the engine's cancel at the deadline). `task` lives until it ends.
  virtual void start(std::size_t slot, const Task& task, Clock::time_point deadline) = 0;
  // Ends the slot's running attempt early; its outcome comes back through the sink (promptly).
  virtual void cancel(std::size_t slot, CancelCause cause) = 0;
  // Waits until `until`, a wake-up of the run's control, or an event of its own, and reports what
  // happened to `sink`.
  virtual void wait(Clock::time_point until, AttemptSink& sink) = 0;
  // No attempt will start again in this round, nor after it (the run's last round is winding down):
  // idle slots may let go of what they hold (worker processes exit now, overlapping the last
  // attempts instead of following them).
  virtual void retire_idle() {}
  // How long an attempt may run before the engine ends it, given --timeout. A transport whose
  // attempt waits on a deadline of its own (a Batch API line: the batch's window) says so here.
  virtual Clock::duration attempt_timeout(Clock::duration configured) const { return configured; }
  // Workers replaced after dying on their own, since the start.
  virtual std::uint64_t restarts() const { return 0; }
};

}  // namespace cbm
