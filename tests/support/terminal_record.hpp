// Test support: a terminal record, as an executor hands it to the ledger.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "task.hpp"

namespace cbm::test {

// The record of one attempt at `topic` (task `id` of `round`), with an analysis when it succeeded.
inline TaskResult terminal_record(std::uint64_t id, std::string topic, std::uint32_t round = 1,
                                  TaskStatus status = TaskStatus::succeeded) {
  TaskResult r;
  r.id = id;
  r.round = round;
  r.topic = std::move(topic);
  r.status = status;
  if (status == TaskStatus::succeeded) r.analysis = "analysis of " + r.topic;
  r.attempts = 1;
  return r;
}

}  // namespace cbm::test
