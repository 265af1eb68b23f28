// RoundExecutor: how one round's tasks are driven (processes, threads). The executors share the
// pipeline, the ledger and the stop rules; they differ only in how tasks are run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cbm {

class RoundExecutor {
 public:
  virtual ~RoundExecutor() = default;
  // Runs one round. Returns once every task has its terminal record in the ledger (cancelled ones
  // included), whether the round finished, drained after a signal, or stopped at once.
  virtual void run_round(std::uint32_t round, const std::vector<std::string>& topics) = 0;
};

}  // namespace cbm
