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
  // Topics a stop left unread (UnreadTopics): no record each, so not in `total`. `not_read` counts
  // those of known ranges; `not_read_unknown` says a range ran to the end of an input of unknown size.
  std::uint64_t not_read = 0;
  bool not_read_unknown = false;
  Spend spend;  // usage by model and web searches, for the estimated cost

  void add(const TaskResult& r);
  void add(const UnreadTopics& u);
  // Every topic has a succeeded record: none failed, was cancelled or left unread.
  bool all_succeeded() const { return succeeded == total && not_read == 0 && !not_read_unknown; }
};

// The summary's counts: the Python tool's fields first (total_tasks, successful_tasks,
// average_execution_time), then failed and cancelled counts, rates, attempts, retries, usage and
// not_read (the topics a stop left unread, null when a range's end is unknown).
void write_totals(JsonWriter& w, const RunTotals& t);

// "N tasks: S succeeded, F failed, C cancelled" (and ", U not read" after a stop): the counts as the
// log and the console say them.
std::string to_string(const RunTotals& t);

}  // namespace cbm
