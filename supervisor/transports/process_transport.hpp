// ProcessTransport (--mode multiprocessing): attempts run in worker processes, over each worker's
// shared-memory channel (a task out, its outcome back). The processes themselves belong to the
// WorkerPool; this transport only pairs each running attempt with the worker running it.
//
// By default every slot has a worker of its own, which runs one attempt at a time. With --workers N,
// slot s's home is worker s mod N, which runs the attempts of its slots (at most K = ceil(concurrency
// / N)) at once on its event loop (docs/architecture.md, "Workers with several attempts"):
//   - an outcome message is its attempt's outcome (one for no attempt of that worker replaces it);
//   - a solo worker's death is the outcome of the attempt it ran alone: a crash (retryable), charged
//     to that attempt's task, whose later attempts then always run alone (a known poison pill). A
//     shared worker's death tells nothing about whose fault it was: each of its attempts runs again,
//     alone in a worker of its own (the slot's "solo" worker), uncharged and with its --timeout
//     started over, so a poison pill is found by dying alone, and no innocent task pays for it with an
//     attempt;
//   - cancel for a timeout: SIGTERM a worker running the attempt alone (SIGKILL after --kill-grace);
//     a shared worker gets a cancel message instead, and is SIGKILLed when it has not answered it
//     within --kill-grace (its other attempts then run again alone); for a stop: SIGKILL now.
// A worker may be SIGKILLed at any instant: it costs its attempts only.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "logger.hpp"
#include "run_clock.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "transport.hpp"
#include "worker_pool.hpp"

namespace cbm {

class ProcessTransport final : public Transport, private WorkerPool::Events {
 public:
  // Throws when workers cannot be run (see WorkerPool).
  ProcessTransport(const RunConfig& config, RunControl& control, Logger& log, RunClock& clock);

  std::size_t slots() const override { return running_.size(); }
  std::string_view slot_label() const override { return "w"; }
  bool prepare(std::size_t slot) override;
  void start(std::size_t slot, const Task& task, Clock::time_point deadline) override;
  void cancel(std::size_t slot, CancelCause cause) override;
  void wait(Clock::time_point until, AttemptSink& sink) override;
  void retire_idle() override;
  std::uint64_t restarts() const override { return pool_.restarts(); }

 private:
  struct Running {
    const Task* task;     // lives until the attempt ends (Transport::start)
    std::size_t process;  // the pool slot running it: the slot's home, or its solo worker
    bool waiting = false;  // for its solo worker to start
    std::optional<Clock::time_point> kill_at;  // a shared worker's deadline to answer a cancel
    bool rerun = false;  // runs again alone after its shared worker died: its --timeout starts over
  };

  // WorkerPool::Events
  void worker_message(std::size_t process, std::string message) override;
  void worker_exited(std::size_t process, const std::string& how, bool restarting) override;

  std::size_t home(std::size_t slot) const { return slot % homes_; }
  std::size_t solo(std::size_t slot) const { return per_worker_ == 1 ? slot : homes_ + slot; }
  bool alone(const Running& r) const { return per_worker_ == 1 || r.process >= homes_; }
  // The slots whose attempts run on pool slot `process`, and a label naming that process in the log.
  std::vector<std::size_t> attempts_on(std::size_t process) const;
  std::string process_label(std::size_t process) const;
  bool up(std::size_t process, std::size_t slot);
  // Starts the slot's attempt on its solo worker now, or as soon as that worker may start.
  void run_alone(std::size_t slot);
  void start_waiting();
  void kill_unanswered();
  void end(std::size_t slot, AttemptOutcome outcome);

  const RunConfig& config_;
  RunControl& control_;
  Logger& log_;
  RunClock& clock_;
  const std::size_t per_worker_;  // attempts a worker runs at once, at most (K)
  const std::size_t homes_;       // workers the slots share (slot s's is s mod homes_)
  WorkerPool pool_;
  std::vector<std::optional<Running>> running_;  // per slot
  // Tasks whose attempt killed its worker alone: their attempts run alone from then on.
  // (round, id); the oldest go first beyond kMaxPoison (an endless monitor's pills of long ago).
  static constexpr std::size_t kMaxPoison = 4096;
  std::set<std::pair<std::uint32_t, std::uint64_t>> poison_;
  std::size_t waiting_ = 0;        // attempts waiting for a solo worker
  std::size_t cancels_sent_ = 0;   // attempts with a kill_at
  EndedAttempts ended_;  // for the sink
  EndedAttempts delivering_;
  std::vector<std::size_t> restarted_;
  std::vector<std::size_t> rerun_;  // slots whose attempts started over alone
  bool failure_reported_ = false;
};

}  // namespace cbm
