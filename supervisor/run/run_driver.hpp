// run_rounds: one whole run. Opens the log, the journal (resumed or new) and the ledger, drives the
// rounds with the executor of the configured mode, writes the report when one is asked for, and
// says how the run ended. Shared by the library's Executor and so by the CLI, which is built on it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exit_status.hpp"
#include "http_client.hpp"
#include "langsmith_tracer.hpp"
#include "logger.hpp"
#include "metrics.hpp"
#include "metrics_server.hpp"
#include "progress.hpp"
#include "results_stream.hpp"
#include "attempt_engine.hpp"
#include "round_executor.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "run_files.hpp"
#include "run_ledger.hpp"
#include "run_observer.hpp"

namespace cbm {

struct RunOutcome {
  RunTotals totals;
  int exit_status = 0;
  bool interrupted = false;
  int interrupted_by_signal = 0;
  std::optional<std::string> abort_reason;
  bool report_written = false;
  std::optional<std::string> report_error;  // why the report asked for was not written
  std::vector<UnreadTopics> unread;  // what a stop left unread (RunLedger::record_unread)
};

// What a run is made of, built in this order from its config: the log, the ledger and its observers
// (the caller's, then LangSmith's tracer, the metrics and the results stream when configured), the progress display and the executor of
// the configured mode. run_rounds drives rounds over it (with a journal); the HTTP service
// (serve.hpp) drives one endless round. Throws when the executor cannot start (no worker program).
struct RunParts {
  RunParts(const RunConfig& config, RunControl& control, RunObserver& observer,
           DrainPolicy drain = DrainPolicy::in_flight);

  RunFiles files;  // first: the files are checked (and the journal locked) before any is opened
  CurlGlobal curl;
  Logger log;
  RunLedger ledger;
  ObserverList observers;
  std::optional<LangSmithTracer> tracer;
  std::optional<Metrics> metrics;               // --metrics-addr: what the server renders...
  std::optional<MetricsServer> metrics_server;  // ...stopped before it
  std::optional<ResultsStream> results;         // --results-jsonl
  Progress progress;
  std::unique_ptr<RoundExecutor> executor;
};

// How long the run's end waits for traces to reach LangSmith: a dead LangSmith costs at most this.
inline constexpr std::chrono::milliseconds kTraceFlushGrace{3000};

// The supervisor's own footprint, for the log (benchmarks read these lines).
std::string own_usage();

// Every placeholder of the prompts must name a field of the input (a CSV's header, the first JSONL
// row's, a list's first row's; none for text or the service's requests). The one-argument form knows
// the fields of a config's list only (a topics file's come from its TopicPlan). Throws std::invalid_argument
// naming the first that does not (or a CSV header that is unusable): call it before anything is
// opened, written or sent.
void check_placeholders(const RunConfig& config);
// The same, the input offering the fields `known` (a topics file's: TopicPlan::field_names).
void check_placeholders(const RunConfig& config, const std::vector<std::string>& known);

// Runs `config` until its rounds end or `control` stops it; `observer` hears of everything (see
// run_observer.hpp). Throws when the run cannot start (a file cannot be opened, the worker is missing).
RunOutcome run_rounds(const RunConfig& config, RunControl& control, RunObserver& observer);

// "N tasks: S succeeded, F failed, C cancelled; report: PATH"
std::string summary_line(const RunTotals& totals, const std::string& report);
// What the summary line says of the report: its path, "none", or "NOT written to PATH: why".
std::string report_note(const std::filesystem::path& output, bool written, const std::optional<std::string>& error);

}  // namespace cbm
