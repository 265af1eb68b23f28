// run_rounds: one whole run. Opens the log, the journal (resumed or new) and the ledger, drives the
// rounds with the executor of the configured mode, writes the report when one is asked for, and
// says how the run ended. Shared by the library's Executor and so by the CLI, which is built on it.
#pragma once

#include <optional>
#include <string>

#include "run_config.hpp"
#include "run_control.hpp"
#include "run_ledger.hpp"
#include "run_observer.hpp"

namespace cbm {

// Exit statuses (documented in --help and the README).
inline constexpr int kExitAllSucceeded = 0;
inline constexpr int kExitSomeFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAborted = 3;

struct RunOutcome {
  RunTotals totals;
  int exit_status = 0;
  bool interrupted = false;
  int interrupted_by_signal = 0;
  std::optional<std::string> abort_reason;
  bool report_written = false;
};

// Runs `config` until its rounds end or `control` stops it; `observer` hears of everything (see
// run_observer.hpp). Throws when the run cannot start (a file cannot be opened, the worker is missing).
RunOutcome run_rounds(const RunConfig& config, RunControl& control, RunObserver& observer);

// "N tasks: S succeeded, F failed, C cancelled; report: PATH"
std::string summary_line(const RunTotals& totals, const std::string& report);

}  // namespace cbm
