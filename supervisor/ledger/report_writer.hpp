// ReportWriter: the report's JSON (README "The report"), one shape for the CLI's report file and the
// service's answers: {"summary": {...}, <the run's sections>, "results": [...]}.
//
// The summary is written in one place whichever report it is, and each result is the journal's record
// (result_codec.hpp), so the file and the answers cannot drift apart; the Python tool's readers find
// summary.total_tasks, successful_tasks, average_execution_time and results[i].topic, success,
// analysis, error_message in both. Pieces go to a sink as they are written: the results of a report of
// any size stream through in constant memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "result_codec.hpp"
#include "run_config.hpp"
#include "run_totals.hpp"
#include "task.hpp"

namespace cbm {

// What the summary says besides the counts.
struct ReportSummary {
  RunTotals totals;
  WallClock::time_point started{};
  WallClock::time_point finished{};
  Clock::duration took{};  // total_time, and what the throughput is over
  std::size_t iterations_completed = 0;
  std::size_t invalid_input_lines = 0;
  bool interrupted = false;
  int interrupted_by_signal = 0;  // 0: none
  std::optional<std::string> abort_reason;
  int exit_status = 0;
  std::optional<std::size_t> concurrency;  // a service's answer: the request's (a run's is in its config)
  // The run's prices: the summary's estimated_cost (docs/cost.md). None: not written.
  const PriceTable* prices = nullptr;
  std::string search_engine;
};

// The summary's `estimated_cost` of `totals` (amount null when a model used has no price).
void write_estimated_cost(JsonWriter& w, const RunTotals& totals, const PriceTable& prices,
                          std::string_view search_engine);

// One round of a run (the report's rounds[]).
struct RoundSummary {
  WallClock::time_point started{};
  std::optional<WallClock::time_point> finished;  // nullopt while it runs
  std::size_t planned = 0;                        // its topics; known once it has finished
  RunTotals totals;
};

class ReportWriter {
 public:
  using Sink = std::function<void(std::string_view piece)>;
  using Sections = std::function<void(JsonWriter&)>;

  // Writes the summary, then the members `sections` writes (a run's config and rounds), and opens the
  // results.
  ReportWriter(Sink sink, const ReportSummary& summary, const Sections& sections = {});

  void add(const TaskResult& record);
  // A record already in its JSON form: a journal line is the report's entry as it is.
  void add_encoded(std::string_view record);
  // A round's unread topics in their JSON form (the report's `not_read[i]`, result_codec.hpp), kept
  // until finish() writes them after the results (a stop records at most one a round).
  void add_unread_encoded(std::string_view entry);
  // Closes the document (and its line).
  void finish();

 private:
  Sink sink_;
  bool first_ = true;
  std::string unread_;  // the not_read entries, comma-separated
};

// A run's sections: its settings (no secrets; `journal` is where its records are) and its rounds.
void write_run_config(JsonWriter& w, const RunConfig& config, const std::filesystem::path& journal);
void write_rounds(JsonWriter& w, const std::map<std::uint32_t, RoundSummary>& rounds);  // by round number

}  // namespace cbm
