#include "run_driver.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "attempt_engine.hpp"
#include "batch_record.hpp"
#include "batch_transport.hpp"
#include "duplicate_topics.hpp"
#include "event_loop_transport.hpp"
#include "fd_limit.hpp"
#include "http_client.hpp"
#include "journal.hpp"
#include "langsmith_tracer.hpp"
#include "logger.hpp"
#include "metrics.hpp"
#include "metrics_server.hpp"
#include "process_transport.hpp"
#include "progress.hpp"
#include "thread_transport.hpp"
#include "topic_plan.hpp"
#include "topic_source.hpp"

namespace cbm {
namespace {

// A run's stop by a signal is reported even when the drain let everything finish: the run did not do
// all it was asked to.
int exit_status_of(const RunLedger& ledger, const RunControl& control) {
  const RunTotals t = ledger.totals();
  return exit_status_of(
      RunEnding{ledger.abort_reason().has_value(), control.first_signal(), t.all_succeeded()});
}

std::unique_ptr<Transport> make_transport(const ExecutorContext& run) {
  // --via batch: one event loop whatever --mode (the platform runs the lines; docs/protocol.md).
  if (run.config.via == Via::batch) return std::make_unique<BatchTransport>(run.config, run.control, run.ledger, run.log);
  switch (run.config.mode) {
    case Mode::multiprocessing:
      return std::make_unique<ProcessTransport>(run.config, run.control, run.log, run.clock);
    case Mode::threading:
      return std::make_unique<ThreadTransport>(run.config, run.control);
    case Mode::asyncio:
      return std::make_unique<EventLoopTransport>(run.config, run.control);
  }
  throw std::invalid_argument("mode: unknown value");
}

// --resume of a journal whose batch files hold lines without a record: those lines are in a batch the
// platform runs (or ran, paid). Only --via batch collects them; sent online they would be paid twice.
void refuse_online_resume_of_batch_lines(const RunConfig& cfg, const std::vector<std::string>& batch_lines,
                                         const RunLedger& ledger) {
  if (cfg.via == Via::batch) return;
  std::size_t pending = 0;
  for (const auto& file : fold_batch_records(batch_lines)) {
    if (file.abandoned) continue;
    for (const auto& custom_id : file.custom_ids) {
      const auto task = parse_batch_custom_id(custom_id);
      if (task && !ledger.has(task->first, task->second)) ++pending;
    }
  }
  if (pending == 0) return;
  throw std::runtime_error("the journal '" + cfg.journal.string() + "' has " + std::to_string(pending) +
                           " line(s) in Batch API files without a result: resume it with --via batch, which "
                           "collects their batches (--via " +
                           std::string(to_string(cfg.via)) +
                           " would send them again, and pay for them twice)");
}

}  // namespace

void check_placeholders(const RunConfig& cfg) {
  std::vector<std::string> known;
  if (!cfg.topics.empty()) {
    for (const auto& f : cfg.topics.front().fields) known.push_back(f.name);
  }
  check_placeholders(cfg, known);
}

void check_placeholders(const RunConfig& cfg, const std::vector<std::string>& known) {
  if (auto e = cfg.pipeline.prompts.check_fields(known)) throw std::invalid_argument("--prompt-file (prompts): " + e->message);
}

namespace {

// SIGUSR1 during a monitor's pause between rounds.
void log_pause_status(Logger& log, const RunLedger& ledger, std::uint32_t next_round,
                      std::chrono::steady_clock::time_point next_at) {
  const std::chrono::duration<double> left = next_at - std::chrono::steady_clock::now();
  char starts[32];
  std::snprintf(starts, sizeof starts, "%.1f", std::max(0.0, left.count()));
  log.info("status: round " + std::to_string(next_round - 1) + " finished, round " + std::to_string(next_round) +
           " starts in " + starts + " s; so far " + to_string(ledger.totals()));
}

}  // namespace

// Resident memory is split: anonymous (heap: what could leak) and shared (the workers' channel rings,
// bounded by their capacity, which grows as the rings are first written through).
std::string own_usage() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  long anon = 0;
  long shmem = 0;
  long rss = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "re")) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      std::sscanf(line, "VmRSS: %ld", &rss);
      std::sscanf(line, "RssAnon: %ld", &anon);
      std::sscanf(line, "RssShmem: %ld", &shmem);
    }
    std::fclose(f);
  }
  const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  char buf[160];
  std::snprintf(buf, sizeof buf, "supervisor rss_kib=%ld anon_kib=%ld shmem_kib=%ld peak_rss_kib=%ld cpu_s=%.3f", rss,
                anon, shmem, ru.ru_maxrss, cpu);
  return buf;
}

RunParts::RunParts(const RunConfig& cfg, RunControl& control, RunObserver& observer, DrainPolicy drain)
    : files(cfg),
      log(cfg.log_file, !cfg.quiet),
      ledger(cfg),
      progress(ledger, cfg.quiet, cfg.progress_interval) {
  const ExecutorContext context{cfg, ledger, control, log, progress, observers, RunClock::steady()};
  executor = std::make_unique<AttemptEngine>(context, make_transport(context), drain);
  observers.add(observer);
  if (cfg.langsmith) {
    tracer.emplace(*cfg.langsmith, TracedModelSettings{cfg.pipeline.model.temperature, cfg.pipeline.model.max_tokens}, log);
    observers.add(*tracer);
    const LangSmithSettings& ls = *cfg.langsmith;
    std::string line = "tracing to LangSmith at " + ls.endpoint + ", project '" + ls.project + "'";
    if (!ls.workspace_id.empty()) line += ", workspace " + ls.workspace_id;
    if (ls.sampling_rate < 1.0) line += ", sampling rate " + std::to_string(ls.sampling_rate);
    if (ls.hide_inputs) line += ", inputs hidden";
    if (ls.hide_outputs) line += ", outputs hidden";
    if (ls.hide_metadata) line += ", metadata hidden";
    log.info(line);
  }
  // Bound before anything is sent: a port in use is a configuration error (exit 2).
  if (cfg.metrics_address) {
    metrics.emplace(cfg.concurrency);
    if (tracer) metrics->trace_totals([this] { return tracer->totals(); });
    observers.add(*metrics);
    try {
      metrics_server.emplace(*cfg.metrics_address, [this] { return metrics->render(); });
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("--metrics-addr ") + e.what());
    }
    log.info("metrics: serving " + metrics_server->url());
  }
  if (!cfg.results_jsonl.empty()) {
    results.emplace(cfg.results_jsonl, cfg.resume, cfg.output_mode);
    observers.add(*results);
  }
  ledger.observe(observers);
}

RunOutcome run_rounds(const RunConfig& cfg, RunControl& control, RunObserver& caller_observer) {
  // The input is read (or, streamed, counted) before anything is opened, written or sent.
  TopicPlan topics(cfg, [&control] { return control.stopping(); });
  check_placeholders(cfg, topics.field_names());
  topics.require_topics();
  ensure_open_file_limit(cfg);  // before anything is sent or written
  RunParts parts(cfg, control, caller_observer);
  Logger& log = parts.log;
  RunLedger& ledger = parts.ledger;
  Progress& progress = parts.progress;
  auto& executor = parts.executor;
  auto& tracer = parts.tracer;

  std::uint32_t first_round = 1;
  if (!cfg.journal.empty()) {
    const JournalSettings settings = JournalSettings::of(cfg);
    std::size_t restored = 0;
    std::optional<Journal> opened;
    std::vector<std::string> batch_lines;  // kept only to refuse a resume that would send them again
    try {
      opened.emplace(cfg.resume ? Journal::open_for_resume(
                                      cfg.journal, settings, cfg.force_resume,
                                      [&](const TaskResult& r) {
                                        ledger.restore(r);
                                        first_round = std::max(first_round, r.round);
                                        ++restored;
                                      },
                                      [&control] { return control.stopping(); },
                                      [&](std::string_view line) {
                                        ledger.restore_batch_line(line);
                                        if (cfg.via != Via::batch) batch_lines.emplace_back(line);
                                      })
                                : Journal::create(cfg.journal, settings));
    } catch (const JournalReadStopped& e) {
      // Nothing was sent and nothing written: the journal is as it was, the report (an earlier run's,
      // if any) too, and a later --resume starts over from the same journal.
      std::string line = e.what();
      line += " for --resume: nothing was sent, the journal is unchanged";
      log.warn(line);
      RunOutcome outcome;
      outcome.interrupted = true;
      outcome.interrupted_by_signal = control.first_signal();
      outcome.exit_status = exit_status_of(RunEnding{false, control.first_signal(), false});
      return outcome;
    }
    refuse_online_resume_of_batch_lines(cfg, batch_lines, ledger);
    Journal journal = std::move(*opened);
    journal.on_failure([&control] { control.wake(); });  // the loop aborts at once (ledger's abort reason)
    ledger.attach(std::move(journal));
    if (cfg.resume) {
      log.info("resuming from '" + cfg.journal.string() + "': " + std::to_string(restored) +
               " finished tasks restored, continuing at round " + std::to_string(first_round));
    }
  }
  ledger.note_invalid_lines(topics.log_held_invalid_lines(log));
  log.info("run started: mode " + std::string(to_string(cfg.mode)) + ", concurrency " +
           std::to_string(cfg.concurrency) + ", iterations " + std::to_string(cfg.iterations) + ", journal " +
           (cfg.journal.empty() ? std::string("none") : cfg.journal.string()) +
           (cfg.rate.requests_per_minute > 0 ? ", --rpm " + std::to_string(cfg.rate.requests_per_minute) : "") +
           (cfg.rate.tokens_per_minute > 0 ? ", --tpm " + std::to_string(cfg.rate.tokens_per_minute) : ""));

  std::optional<std::string> report_error;  // the last write's failure
  auto write_report = [&](int status) {
    if (cfg.output.empty()) return false;
    try {
      ledger.write_report(cfg.output, status);
      report_error.reset();
      return true;
    } catch (const std::exception& e) {
      report_error = e.what();
      log.error(std::string("cannot write the report: ") + e.what());
      return false;
    }
  };

  for (std::uint32_t round = first_round;
       cfg.iterations == 0 || round <= static_cast<std::uint32_t>(cfg.iterations); ++round) {
    // The first round runs even when a stop came before it: each of its topics is reported (cancelled).
    if ((round > first_round && control.stopping()) || ledger.abort_reason()) break;
    if (round > first_round && cfg.delay.count() > 0) {
      const auto next_at = std::chrono::steady_clock::now() + cfg.delay;
      if (control.pause(cfg.delay, [&] { log_pause_status(log, ledger, round, next_at); })) break;
    }
    if (control.take_reload()) topics.on_reload_request(log);
    ledger.begin_round(round);
    TopicPlan::Round next = topics.next_round();
    progress.begin_round(round, next.survey.topics);
    DedupingSource deduped(*next.source, ledger, round, std::move(next.survey));
    executor->run_round(round, deduped);
    log_invalid_lines(log, deduped.take_invalid_lines(), deduped.invalid_count());
    ledger.note_invalid_lines(deduped.invalid_count());
    const std::size_t planned = deduped.consumed();
    ledger.end_round(round, planned);
    // A monitor's report is current after every round (readers never see a partial file).
    if (cfg.iterations != 1) write_report(exit_status_of(ledger, control));
    log.info("round " + std::to_string(round) + " finished: " + std::to_string(planned) + " topics; " + own_usage());
  }

  if (control.interrupted()) ledger.mark_interrupted(control.first_signal());
  if (auto reason = ledger.abort_reason()) log.error("run aborted: " + *reason);
  RunOutcome outcome;
  outcome.exit_status = exit_status_of(ledger, control);
  outcome.report_written = write_report(outcome.exit_status);
  outcome.report_error = report_error;
  // Finished: nothing is left for --resume to do, so a new run may replace the journal (run_files.hpp).
  if (!control.interrupted() && !ledger.abort_reason() && (outcome.report_written || cfg.output.empty())) {
    ledger.mark_journal_finished(outcome.exit_status);
  }
  if (tracer) tracer->close(kTraceFlushGrace);
  outcome.totals = ledger.totals();
  outcome.interrupted = control.interrupted();
  outcome.interrupted_by_signal = control.first_signal();
  outcome.abort_reason = ledger.abort_reason();
  outcome.unread = ledger.unread();
  progress.finish();
  log.info("run finished with exit status " + std::to_string(outcome.exit_status) + ": " +
           summary_line(outcome.totals, report_note(cfg.output, outcome.report_written, report_error)) + "; " +
           own_usage());
  if (!outcome.report_written && !cfg.output.empty() && outcome.exit_status == kExitAllSucceeded) {
    outcome.exit_status = kExitSomeFailed;
  }
  return outcome;
}

std::string summary_line(const RunTotals& t, const std::string& report) {
  return to_string(t) + "; report: " + report;
}

std::string report_note(const std::filesystem::path& output, bool written, const std::optional<std::string>& error) {
  if (output.empty()) return "none";
  if (written) return output.string();
  std::string note = "NOT written to ";
  note += output.string();
  note += ": ";
  note += error.value_or("the run ended before writing it");
  return note;
}

}  // namespace cbm
