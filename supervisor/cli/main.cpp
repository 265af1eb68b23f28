// concurrent_bigmodel: the command line over the library. Parses the flags into the library's Config,
// forwards TERM/INT/HUP/USR1 to the Executor, runs, prints the summary, and exits with a status
// scripts can test (see --help). `concurrent_bigmodel serve` runs the HTTP service instead (serve.hpp).
#include <csignal>
#include <iostream>

#include "all_admissions.hpp"
#include "atomic_file.hpp"
#include "fleet_job.hpp"
#include "fleet_node.hpp"
#include "fleet_rate.hpp"
#include "fleet_semaphore.hpp"
#include "cli.hpp"
#include "concurrent_bigmodel/executor.hpp"
#include "price_table.hpp"
#include "public_config.hpp"
#include "run_driver.hpp"
#include "signal_watcher.hpp"

namespace cbm {
namespace {

// The library's summary in the run's own summary line (run_driver.hpp), so the console and the log agree.
std::string summary_line(const concurrent_bigmodel::Summary& s, const std::string& report) {
  RunTotals counts;
  counts.total = s.total_tasks;
  counts.succeeded = s.successful_tasks;
  counts.failed = s.failed_tasks;
  counts.cancelled = s.cancelled_tasks;
  counts.not_read = s.not_read.value_or(0);
  counts.not_read_unknown = !s.not_read.has_value();
  return cbm::summary_line(counts, report);
}

// The run's tokens and estimated cost, after the counts on the summary line.
std::string spend_part(const concurrent_bigmodel::Summary& s) {
  std::string text = "; tokens ";
  text += std::to_string(s.usage.total_tokens);
  if (!s.estimated_cost) {  // a model or search engine the price table has no price for
    text += ", estimated cost unknown (no price for a model used; give one with --price-file)";
    return text;
  }
  text += ", estimated cost ";
  text += format_money(*s.estimated_cost, s.cost_currency);
  text += " (prices of ";
  text += s.price_table_date;
  text += ')';
  return text;
}

// --dry-run: the estimate on stdout (and as JSON at --output); nothing is sent, no report or journal.
int dry_run(const Invocation& inv) {
  const concurrent_bigmodel::Executor executor(inv.config);
  const concurrent_bigmodel::Estimate e =
      !inv.topics_file.empty() ? executor.estimate_file(inv.topics_file, inv.iterations)
      : !inv.rows.empty()      ? executor.estimate_rows(inv.rows, inv.iterations)
                               : executor.estimate(inv.topics, inv.iterations);
  std::cout << e.text << std::flush;
  if (!inv.dry_run_output.empty()) {
    // As a report is written: atomically, 0600 (or --output-mode), never through a link or a device.
    const std::string error = write_file_atomically(inv.dry_run_output, e.json + "\n", inv.config.output_mode);
    if (!error.empty()) {
      std::cerr << "concurrent_bigmodel: --output: " << error << "\n";
      return kExitUsage;
    }
  }
  return kExitAllSucceeded;
}

// A batch run stopped early says how to go on: its batches run on at the platform.
std::string resume_part(const Invocation& inv, const concurrent_bigmodel::Summary& s) {
  if (!s.interrupted || inv.config.via != concurrent_bigmodel::Via::batch) return "";
  return "; batches in progress go on at the platform: run again with --resume to collect them";
}

int run(const Invocation& inv) {
  if (inv.dry_run) return dry_run(inv);
  std::signal(SIGPIPE, SIG_IGN);
  // A file-size limit (ulimit -f) is then a write error like a full disk (EFBIG): the journal fails,
  // the run stops dispatching and exits 3 saying why, instead of dying of SIGXFSZ with a core.
  std::signal(SIGXFSZ, SIG_IGN);
  // An inherited SIG_IGN for SIGCHLD would make the kernel reap workers itself: waitpid could not
  // report how they ended.
  std::signal(SIGCHLD, SIG_DFL);
  concurrent_bigmodel::Executor executor(inv.config);
  // Before the run's threads: they inherit the blocked mask.
  SignalWatcher signals({[&](int sig) { executor.stop_by_signal(sig); }, [&] { executor.reload_topics(); },
                         [&] { executor.log_status(); }});
  const concurrent_bigmodel::Summary summary =
      !inv.topics_file.empty() ? executor.run_file(inv.topics_file, inv.iterations)
      : !inv.rows.empty()      ? executor.run_rows(inv.rows, inv.iterations)
                               : executor.run(inv.topics, inv.iterations);
  if (inv.config.console) {
    std::cerr << "concurrent_bigmodel: "
              << summary_line(summary, report_note(inv.config.output, summary.report_written, summary.report_error))
              << spend_part(summary) << resume_part(inv, summary)
              << "\n";
  }
  return summary.exit_status;
}

// The service binds its address first (a port in use exits 2 before anything starts); it starts no
// thread before run(), so the watcher still comes before every thread.
int serve(const ServeInvocation& inv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
  std::signal(SIGCHLD, SIG_DFL);
  const RunConfig config = checked_run_config(inv.config);
  Service service(config, inv.options);
  SignalWatcher signals({[&](int sig) { service.stop_by_signal(sig); }, [] {}, [&] { service.log_status(); }});
  return service.run();
}

// A fleet's commands (docs/fleet.md).
int fleet_command(const FleetInvocation& inv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
  std::signal(SIGCHLD, SIG_DFL);
  const auto url = redis::parse_redis_url(inv.redis_url, std::getenv("CBM_REDIS_PASSWORD"));
  const auto wait = std::chrono::milliseconds(static_cast<long long>(inv.redis_wait_s * 1000.0));
  using C = FleetInvocation::Command;
  switch (inv.command) {
    case C::submit: {
      RunConfig config = checked_run_config(inv.config);
      config.topics_file = inv.topics_file;
      fleet::MonitorOptions monitor;
      monitor.iterations = inv.iterations;
      monitor.leader_ttl = std::chrono::milliseconds(static_cast<long long>(inv.leader_lease_s * 1000.0));
      monitor.holder = fleet::lease_holder_name();  // host:pid:nonce, unique even across containers
      fleet::StopFlag stop;
      SignalWatcher signals({[&](int sig) { stop.set(sig); }, [] {}, [] {}});
      return fleet::submit(config, url, inv.job, wait, monitor, stop);
    }
    case C::work: {
      RunConfig config = checked_run_config(inv.config);
      fleet::NodeOptions options;
      options.name = inv.node_name.empty() ? fleet::default_node_name() : inv.node_name;
      // More admission conditions for the node's engine: the API key's fleet-wide limits, each asked
      // for every attempt (the semaphore first: it refuses most often, and most cheaply).
      std::vector<std::shared_ptr<SharedAdmission>> shared;
      const std::string scope = fleet::api_key_scope(config.client.api_key);
      const std::string holder = fleet::lease_holder_name();
      if (inv.fleet_concurrency > 0) {
        const fleet::FleetLimitSettings limits{
            inv.fleet_concurrency, std::chrono::milliseconds(static_cast<long long>(inv.fleet_lease_s * 1000.0))};
        shared.push_back(std::make_shared<fleet::FleetSemaphore>(url, scope, holder, limits));
      }
      if (inv.fleet_rpm > 0 || inv.fleet_tpm > 0) {
        shared.push_back(std::make_shared<fleet::FleetRate>(url, scope, holder,
                                                            fleet::FleetRateSettings{inv.fleet_rpm, inv.fleet_tpm}));
      }
      if (shared.size() == 1) config.shared_admission = shared.front();
      if (shared.size() > 1) config.shared_admission = std::make_shared<AllAdmissions>(std::move(shared));
      options.grace = std::chrono::milliseconds(static_cast<long long>(inv.lease_grace_s * 1000.0));
      options.journal = inv.node_journal;
      fleet::FleetNode node(config, url, inv.job, options);
      SignalWatcher signals({[&](int sig) { node.stop_by_signal(sig); }, [] {}, [] {}});
      return node.run();
    }
    case C::collect: {
      const RunConfig config;  // the bundled prices, the default file mode
      return fleet::collect(config, url, inv.job, inv.output, inv.follow, wait, inv.round);
    }
    case C::status:
      break;
  }
  return fleet::status(url, inv.job, wait);
}

}  // namespace
}  // namespace cbm

int main(int argc, char** argv) {
  cbm::CommandLine cl = cbm::parse_command_line(argc, argv);
  if (!cl.run && !cl.serve && !cl.fleet) {
    (cl.exit_status == 0 ? std::cout : std::cerr) << cl.message << "\n";
    return cl.exit_status;
  }
  try {
    if (cl.serve) return cbm::serve(*cl.serve);
    if (cl.fleet) return cbm::fleet_command(*cl.fleet);
    return cbm::run(*cl.run);
  } catch (const cbm::PathError& e) {  // the library names the Config field, the CLI the flag
    std::cerr << "concurrent_bigmodel: " << e.problem().text(true) << "\n";
    return cbm::kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "concurrent_bigmodel: " << e.what() << "\n";
    return cbm::kExitUsage;
  }
}
