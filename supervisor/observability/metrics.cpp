#include "metrics.hpp"

#include <algorithm>
#include <chrono>

#include "cbm/version.hpp"
#include "error_classification.hpp"
#include "prometheus_text.hpp"

namespace cbm {
namespace {

constexpr std::array<TaskStatus, 3> kStatusOrder = {TaskStatus::succeeded, TaskStatus::failed,
                                                    TaskStatus::cancelled};
constexpr std::array<std::string_view, 6> kResultNames = {"ok",        "retryable",  "task_fatal",
                                                          "run_fatal", "wait_until", "cancelled"};
constexpr std::array<ErrorKind, 9> kKindOrder = {
    ErrorKind::api,          ErrorKind::transport, ErrorKind::timeout,   ErrorKind::protocol,  ErrorKind::content,
    ErrorKind::invalid_json, ErrorKind::crash,     ErrorKind::cancelled, ErrorKind::incomplete};

std::size_t result_index(const AttemptOutcome& outcome) {
  if (outcome.ok()) return 0;
  if (outcome.error->kind == ErrorKind::cancelled) return kResultNames.size() - 1;
  return 1 + static_cast<std::size_t>(outcome.error->error_class);
}

double seconds(std::chrono::milliseconds ms) {
  return static_cast<double>(ms.count()) / 1000.0;
}

std::uint64_t count_of(std::int64_t n) { return n > 0 ? static_cast<std::uint64_t>(n) : 0; }

double unix_now() { return std::chrono::duration<double>(WallClock::now().time_since_epoch()).count(); }

}  // namespace

// Tasks span a fast simulator answer to a slow model's retries under --timeout 120; requests, a
// cached reply to a long analysis.
const std::vector<double> Metrics::kTaskBuckets = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
const std::vector<double> Metrics::kRequestBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

void Metrics::Histogram::observe(double v) {
  const auto bucket = std::lower_bound(bounds->begin(), bounds->end(), v) - bounds->begin();
  ++counts[static_cast<std::size_t>(bucket)];
  sum += v;
}

Metrics::Metrics(int concurrency)
    : limit_(concurrency),
      start_time_(unix_now()),
      task_durations_(kStatuses, Histogram(kTaskBuckets)) {}

void Metrics::attempt_started(const Task& task, int) {
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  if (task.attempt <= 1) return;
  std::size_t kind = 0;
  {
    std::lock_guard lock(failures_mu_);
    const auto it = last_failure_.find({task.round, task.id});
    if (it == last_failure_.end()) return;
    kind = it->second;
    last_failure_.erase(it);
  }
  retries_[kind].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::attempt_ended(const Task& task, const AttemptOutcome& outcome, int) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  attempts_[result_index(outcome)].fetch_add(1, std::memory_order_relaxed);
  if (!outcome.steps.empty()) {
    std::lock_guard lock(histograms_mu_);
    for (const StepRecord& step : outcome.steps) {
      Tokens& t = tokens_[step.model];
      t.prompt += count_of(step.usage.prompt_tokens);
      t.completion += count_of(step.usage.completion_tokens);
      request_durations_.try_emplace({step.name, step.model}, kRequestBuckets)
          .first->second.observe(seconds(step.latency));
    }
  }
  if (!outcome.ok() && outcome.error->kind == ErrorKind::api) {
    const ApiError& e = *outcome.error;
    std::lock_guard lock(api_errors_mu_);
    // Codes of the platform's table only: a server's own strings would grow the series without bound.
    const std::string code = e.code.empty() ? "none" : find_error_code(e.code) != nullptr ? e.code : "other";
    ++api_errors_[{code, e.http_status}];
  }
  if (!outcome.ok() && outcome.error->kind != ErrorKind::cancelled) {
    std::lock_guard lock(failures_mu_);
    last_failure_[{task.round, task.id}] = static_cast<std::size_t>(outcome.error->kind);
  }
}

void Metrics::task_finished(const TaskResult& result) {
  const auto status = static_cast<std::size_t>(result.status);
  tasks_[status].fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(histograms_mu_);
    round_failed_[result.round] |= !result.success();
  }
  if (result.attempts == 0 || result.duplicate_of) return;
  {
    std::lock_guard lock(failures_mu_);
    last_failure_.erase({result.round, result.id});
  }
  std::lock_guard lock(histograms_mu_);
  task_durations_[status].observe(seconds(result.execution_time));
}

void Metrics::worker_restarted(int) {
  worker_restarts_.fetch_add(1, std::memory_order_relaxed);
}

void Metrics::limit_changed(int effective) {
  limit_.store(effective, std::memory_order_relaxed);
}

void Metrics::round_finished(std::uint32_t round) {
  rounds_completed_.fetch_add(1, std::memory_order_relaxed);
  bool failed = false;
  {
    std::lock_guard lock(histograms_mu_);
    if (auto it = round_failed_.find(round); it != round_failed_.end()) {
      failed = it->second;
      round_failed_.erase(it);
    }
  }
  if (!failed) last_round_success_.store(unix_now(), std::memory_order_relaxed);
}

void Metrics::quota_paused(std::optional<WallClock::time_point> until) {
  const std::int64_t seconds_since_epoch =
      until ? std::chrono::duration_cast<std::chrono::seconds>(until->time_since_epoch()).count() : 0;
  paused_until_.store(seconds_since_epoch, std::memory_order_relaxed);
}

std::string Metrics::render() const {
  constexpr auto relaxed = std::memory_order_relaxed;
  PrometheusText out;

  out.family("cbm_tasks_total", "counter", "Tasks that reached their terminal record, by outcome.");
  for (const TaskStatus s : kStatusOrder) {
    out.sample("cbm_tasks_total", {{"outcome", to_string(s)}},
               tasks_[static_cast<std::size_t>(s)].load(relaxed));
  }

  out.family("cbm_attempts_total", "counter",
             "Task attempts that ended: ok, the error class of a failure, or cancelled by a stop.");
  for (std::size_t i = 0; i < kResults; ++i) {
    out.sample("cbm_attempts_total", {{"result", kResultNames[i]}}, attempts_[i].load(relaxed));
  }

  out.family("cbm_retries_total", "counter",
             "Attempts started again after a failed one, by the failure's kind.");
  for (const ErrorKind k : kKindOrder) {
    // A cancelled attempt is never retried, nor is an incomplete one (task_fatal).
    if (k == ErrorKind::cancelled || k == ErrorKind::incomplete) continue;
    out.sample("cbm_retries_total", {{"kind", to_string(k)}},
               retries_[static_cast<std::size_t>(k)].load(relaxed));
  }

  {
    std::lock_guard lock(api_errors_mu_);
    out.family("cbm_api_errors_total", "counter",
               "Error answers from the platform, by its error code and the HTTP status.");
    for (const auto& [key, n] : api_errors_) {
      out.sample("cbm_api_errors_total", {{"code", key.first}, {"http_status", std::to_string(key.second)}}, n);
    }
  }

  {
    std::lock_guard lock(histograms_mu_);
    out.family("cbm_task_duration_seconds", "histogram",
               "Seconds from a task's first attempt to its terminal record, retries included.");
    for (const TaskStatus s : kStatusOrder) {
      const Histogram& h = task_durations_[static_cast<std::size_t>(s)];
      out.histogram("cbm_task_duration_seconds", {{"outcome", to_string(s)}}, {*h.bounds, h.counts, h.sum});
    }
    out.family("cbm_request_duration_seconds", "histogram",
               "Seconds each model call took, failed ones included, by pipeline step and model.");
    for (const auto& [key, h] : request_durations_) {
      out.histogram("cbm_request_duration_seconds", {{"step", key.first}, {"model", key.second}},
                    {*h.bounds, h.counts, h.sum});
    }
    out.family("cbm_tokens_total", "counter", "Tokens the platform reported for every model call, by kind and model.");
    for (const auto& [model, t] : tokens_) {
      out.sample("cbm_tokens_total", {{"kind", "prompt"}, {"model", model}}, t.prompt);
      out.sample("cbm_tokens_total", {{"kind", "completion"}, {"model", model}}, t.completion);
    }
  }

  out.family("cbm_in_flight", "gauge", "Task attempts running now.");
  out.sample("cbm_in_flight", {}, static_cast<double>(std::max<std::int64_t>(0, in_flight_.load(relaxed))));
  out.family("cbm_concurrency_limit", "gauge",
             "The effective limit on attempts in flight (--concurrency, lowered by the platform's 429s).");
  out.sample("cbm_concurrency_limit", {}, static_cast<double>(limit_.load(relaxed)));
  out.family("cbm_quota_paused_until_seconds", "gauge",
             "While a usage cap pauses dispatch, when the pause ends (Unix time); 0 when not paused.");
  out.sample("cbm_quota_paused_until_seconds", {}, static_cast<double>(paused_until_.load(relaxed)));
  out.family("cbm_worker_restarts_total", "counter", "Workers that died unexpectedly and were restarted.");
  out.sample("cbm_worker_restarts_total", {}, worker_restarts_.load(relaxed));
  out.family("cbm_rounds_completed_total", "counter", "Rounds over the topic list that ended.");
  out.sample("cbm_rounds_completed_total", {}, rounds_completed_.load(relaxed));
  out.family("cbm_last_round_success_timestamp_seconds", "gauge",
             "When the last round in which every task succeeded ended, since the Unix epoch; 0: none yet.");
  out.sample("cbm_last_round_success_timestamp_seconds", {}, last_round_success_.load(relaxed));
  if (trace_totals_) {
    const SenderTotals t = trace_totals_();
    out.family("cbm_langsmith_sent_total", "counter", "LangSmith run records delivered.");
    out.sample("cbm_langsmith_sent_total", {}, t.sent);
    out.family("cbm_langsmith_dropped_total", "counter", "LangSmith run records lost, by reason.");
    const std::pair<std::string_view, std::size_t> dropped[] = {
        {"queue_full", t.queue_full}, {"rejected", t.rejected}, {"unreachable", t.unreachable},
        {"orphaned", t.orphaned},     {"unsent_at_exit", t.unsent_at_exit}};
    for (const auto& [reason, n] : dropped) out.sample("cbm_langsmith_dropped_total", {{"reason", reason}}, n);
  }
  if (fleet_.load(std::memory_order_acquire)) {
    out.family("cbm_fleet_reclaimed_total", "counter", "Tasks this fleet node took over from a node past its lease.");
    out.sample("cbm_fleet_reclaimed_total", {}, fleet_reclaimed_.load(relaxed));
    out.family("cbm_fleet_duplicates_total", "counter",
               "Results this fleet node finished after another node's (counted, not written).");
    out.sample("cbm_fleet_duplicates_total", {}, fleet_duplicates_.load(relaxed));
    out.family("cbm_fleet_dead_lettered_total", "counter",
               "Tasks this fleet node failed for being delivered more than --max-retries + 1 times.");
    out.sample("cbm_fleet_dead_lettered_total", {}, fleet_dead_lettered_.load(relaxed));
  }
  out.family("cbm_build_info", "gauge", "1, labelled with the version of concurrent_bigmodel.");
  out.sample("cbm_build_info", {{"version", kVersion}}, std::uint64_t{1});
  out.family("process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch, in seconds.");
  out.sample("process_start_time_seconds", {}, start_time_);
  return out.text();
}

}  // namespace cbm
