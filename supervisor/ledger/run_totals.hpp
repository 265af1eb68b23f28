// RunTotals: counts over terminal records (a run's, a round's, one HTTP request's) and their JSON
// form, the report's summary counts. Shared so every report counts the same way.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "result_codec.hpp"
#include "spend.hpp"
#include "task.hpp"

namespace cbm {

struct RunTotals {
  std::size_t total = 0;
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  std::size_t cancelled = 0;
  std::size_t attempts = 0;
  std::chrono::milliseconds execution_time_sum{0};  // over tasks that ran at least one attempt
  std::size_t timed_tasks = 0;
  Usage usage;
  Spend spend;  // usage by model and web searches, for the estimated cost

  void add(const TaskResult& r);
};

// The summary's counts: the Python tool's fields first (total_tasks, successful_tasks,
// average_execution_time), then failed and cancelled counts, rates, attempts, retries and usage.
void write_totals(JsonWriter& w, const RunTotals& t);

// "N tasks: S succeeded, F failed, C cancelled": the counts as the log and the console say them.
std::string to_string(const RunTotals& t);

}  // namespace cbm
