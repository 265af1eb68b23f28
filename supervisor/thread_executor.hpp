// ThreadExecutor (--mode threading): N threads in this process, each with its own HTTP client,
// pulling tasks from a shared index. Every attempt passes the ConcurrencyGate (the adaptive in-flight
// limit and the --rpm/--tpm caps, shared by all threads and kept across rounds). Retries wait on
// RunControl, and the gate is closed on a stop, so a stop ends both waits at once.
// What it cannot survive, by nature: a crash anywhere takes the whole process (use multiprocessing).
#pragma once

#include <mutex>

#include <string>
#include <vector>

#include "concurrency_gate.hpp"
#include "logger.hpp"
#include "progress.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "round_executor.hpp"
#include "run_ledger.hpp"
#include "run_observer.hpp"

namespace cbm {

class ThreadExecutor final : public RoundExecutor {
 public:
  explicit ThreadExecutor(const ExecutorContext& run);

  std::size_t run_round(std::uint32_t round, TopicSource& topics) override;

 private:
  ConcurrencyGate gate_;
  // Held from a release() that changes the limit until observers hear of it: threads release
  // concurrently, and the last change must be the last one heard (the metrics gauge, the log).
  std::mutex limit_mu_;
};

}  // namespace cbm
