// RoundExecutor: what runs one round's tasks. Its one implementation is the AttemptEngine
// (engine/attempt_engine.hpp) over the transport of the configured mode; a fleet node would be another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "logger.hpp"
#include "progress.hpp"
#include "run_clock.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "run_ledger.hpp"
#include "run_observer.hpp"
#include "topic_source.hpp"

namespace cbm {

// What every executor works with: the run's settings, where its records go, its stop state, and what
// reports on it. Everything must outlive the executor.
struct ExecutorContext {
  const RunConfig& config;
  RunLedger& ledger;
  RunControl& control;
  Logger& log;
  Progress& progress;
  RunObserver& observer;
  RunClock& clock;
};

class RoundExecutor {
 public:
  virtual ~RoundExecutor() = default;
  // Runs one round over `topics`. Returns once every topic has its terminal record in the ledger
  // (cancelled ones included), whether the round finished, drained after a signal, or stopped at once;
  // the result is how many topics the round had.
  virtual std::size_t run_round(std::uint32_t round, TopicSource& topics) = 0;

 protected:
  explicit RoundExecutor(const ExecutorContext& run)
      : config_(run.config),
        ledger_(run.ledger),
        control_(run.control),
        log_(run.log),
        progress_(run.progress),
        observer_(run.observer),
        clock_(run.clock) {}

  // The in-flight limit moved from `from` to `to` after an attempt that ended `ok` or not: observers
  // hear of it and the log says why.
  void announce_limit(int from, int to, bool ok) {
    observer_.limit_changed(to);
    log_.info("in-flight limit " + std::to_string(from) + " -> " + std::to_string(to) +
              (ok ? " (recovering)" : " (the platform says: too many requests)"));
  }

  const RunConfig& config_;
  RunLedger& ledger_;
  RunControl& control_;
  Logger& log_;
  Progress& progress_;
  RunObserver& observer_;
  RunClock& clock_;
};

}  // namespace cbm
