// RoundExecutor: how one round's tasks are driven (processes, threads). The executors share the
// pipeline, the ledger and the stop rules; they differ only in how tasks are run.
#pragma once

#include <cstddef>
#include <cstdint>

#include "topic_source.hpp"

namespace cbm {

class RoundExecutor {
 public:
  virtual ~RoundExecutor() = default;
  // Runs one round over `topics`. Returns once every topic has its terminal record in the ledger
  // (cancelled ones included), whether the round finished, drained after a signal, or stopped at once;
  // the result is how many topics the round had.
  virtual std::size_t run_round(std::uint32_t round, TopicSource& topics) = 0;
};

}  // namespace cbm
