// ProcessTransport (--mode multiprocessing): each slot's attempts run in its worker process, over the
// worker's shared-memory channel (a task out, its outcome back). The processes themselves belong to
// the WorkerPool; this transport only pairs each running attempt with its slot's worker:
//   - an outcome message is the attempt's outcome (a message for another attempt replaces the worker);
//   - a worker's death during an attempt is the attempt's outcome: a crash (retryable);
//   - cancel for a timeout: SIGTERM, SIGKILL after --kill-grace; for a stop: SIGKILL now.
// A worker may be SIGKILLed at any instant: it costs its attempt only.
#pragma once

#include <optional>
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

  std::size_t slots() const override { return pool_.size(); }
  std::string_view slot_label() const override { return "w"; }
  bool prepare(std::size_t slot) override;
  void start(std::size_t slot, const Task& task, Clock::time_point deadline) override;
  void cancel(std::size_t slot, CancelCause cause) override;
  void wait(Clock::time_point until, AttemptSink& sink) override;
  void retire_idle() override;
  std::uint64_t restarts() const override { return pool_.restarts(); }

 private:
  struct Running {
    std::uint64_t task_id;
    int attempt;
  };

  // WorkerPool::Events
  void worker_message(std::size_t slot, std::string message) override;
  void worker_exited(std::size_t slot, const std::string& how, bool restarting) override;

  void end(std::size_t slot, AttemptOutcome outcome);

  Logger& log_;
  WorkerPool pool_;
  std::vector<std::optional<Running>> running_;                // per slot
  EndedAttempts ended_;  // for the sink
  EndedAttempts delivering_;
  std::vector<std::size_t> restarted_;
  bool failure_reported_ = false;
};

}  // namespace cbm
