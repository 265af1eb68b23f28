#pragma once

#include "batch_store.h"
#include "concurrency_limiter.h"
#include "faults.h"
#include "options.h"
#include "run_store.h"
#include "stats.h"

namespace simulator {

// Everything the sessions share. Owned by the Server, which outlives every session; each member is
// thread-safe on its own.
struct SimulatorState {
  explicit SimulatorState(const Options& server_options)
      : options(server_options),
        limiter(server_options.concurrency_limit),
        batches(server_options, markers) {}

  const Options& options;
  Stats stats;
  MarkerLedger markers;
  ConcurrencyLimiter limiter;
  RunStore runs;
  BatchStore batches;
};

}  // namespace simulator
