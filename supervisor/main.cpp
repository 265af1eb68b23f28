// concurrent_bigmodel: parses the command line, runs the rounds with the chosen executor, writes the
// report, and exits with a status scripts can test (see --help).
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include "atomic_file.hpp"
#include "cli.hpp"
#include "http_client.hpp"
#include "logger.hpp"
#include "process_executor.hpp"
#include "run_control.hpp"
#include "run_ledger.hpp"
#include "thread_executor.hpp"

namespace cbm {
namespace {

int exit_status_of(const RunLedger& ledger, const RunControl& control) {
  if (control.first_signal() != 0) return 128 + control.first_signal();
  if (ledger.abort_reason()) return kExitAborted;
  const RunTotals t = ledger.totals();
  return t.succeeded == t.total ? kExitAllSucceeded : kExitSomeFailed;
}

std::string summary_line(const RunTotals& t, const std::string& report) {
  return std::to_string(t.total) + " tasks: " + std::to_string(t.succeeded) + " succeeded, " +
         std::to_string(t.failed) + " failed, " + std::to_string(t.cancelled) + " cancelled; report: " + report;
}

std::unique_ptr<RoundExecutor> make_executor(const RunConfig& cfg, RunLedger& ledger, RunControl& control,
                                             Logger& log) {
  if (cfg.mode == Mode::threading) return std::make_unique<ThreadExecutor>(cfg, ledger, control, log);
  return std::make_unique<ProcessExecutor>(cfg, ledger, control, log);
}

int run(const RunConfig& cfg) {
  std::signal(SIGPIPE, SIG_IGN);
  RunControl control;
  SignalWatcher signals(control);  // first: every later thread inherits the blocked mask
  CurlGlobal curl;
  Logger log(cfg.log_file, !cfg.quiet);
  RunLedger ledger(cfg);
  auto executor = make_executor(cfg, ledger, control, log);

  log.info("run started: mode " + std::string(to_string(cfg.mode)) + ", concurrency " +
           std::to_string(cfg.concurrency) + ", " + std::to_string(cfg.topics.size()) + " topics, iterations " +
           std::to_string(cfg.iterations));
  auto write_report = [&](int status) {
    if (std::string err = write_file_atomically(cfg.output, ledger.report_json(status)); !err.empty()) {
      log.error("cannot write the report: " + err);
      return false;
    }
    return true;
  };

  for (std::uint32_t round = 1; cfg.iterations == 0 || round <= static_cast<std::uint32_t>(cfg.iterations);
       ++round) {
    if (control.stopping() || ledger.abort_reason()) break;
    if (round > 1 && cfg.delay.count() > 0 && control.wait_for(cfg.delay)) break;
    ledger.begin_round(round, cfg.topics.size());
    executor->run_round(round, cfg.topics);
    ledger.end_round(round);
    if (cfg.iterations != 1) write_report(exit_status_of(ledger, control));
  }

  if (control.first_signal() != 0) ledger.mark_interrupted(control.first_signal());
  if (auto reason = ledger.abort_reason()) log.error("run aborted: " + *reason);
  int status = exit_status_of(ledger, control);
  const bool written = write_report(status);
  const RunTotals totals = ledger.totals();
  log.info("run finished with exit status " + std::to_string(status) + ": " + summary_line(totals, cfg.output.string()));
  if (!cfg.quiet) std::cerr << "concurrent_bigmodel: " << summary_line(totals, cfg.output.string()) << "\n";
  if (!written && status == kExitAllSucceeded) status = kExitSomeFailed;
  return status;
}

}  // namespace
}  // namespace cbm

int main(int argc, char** argv) {
  cbm::CommandLine cl = cbm::parse_command_line(argc, argv);
  if (!cl.config) {
    (cl.exit_status == 0 ? std::cout : std::cerr) << cl.message << "\n";
    return cl.exit_status;
  }
  try {
    return cbm::run(*cl.config);
  } catch (const std::exception& e) {
    std::cerr << "concurrent_bigmodel: " << e.what() << "\n";
    return cbm::kExitUsage;
  }
}
