#include "metrics.hpp"

#include <algorithm>
#include <chrono>

#include "prometheus_text.hpp"

namespace cbm {
namespace {

constexpr std::array<TaskStatus, 3> kStatusOrder = {TaskStatus::succeeded, TaskStatus::failed,
                                                    TaskStatus::cancelled};
constexpr std::array<std::string_view, 6> kResultNames = {"ok",        "retryable",  "task_fatal",
                                                          "run_fatal", "wait_until", "cancelled"};
constexpr std::array<ErrorKind, 8> kKindOrder = {
    ErrorKind::api,     ErrorKind::transport, ErrorKind::timeout,   ErrorKind::protocol,
    ErrorKind::content, ErrorKind::crash,     ErrorKind::cancelled, ErrorKind::incomplete};

std::size_t result_index(const AttemptOutcome& outcome) {
  if (outcome.ok()) return 0;
  if (outcome.error->kind == ErrorKind::cancelled) return kResultNames.size() - 1;
  return 1 + static_cast<std::size_t>(outcome.error->error_class);
}

double seconds(std::chrono::milliseconds ms) {
  return static_cast<double>(ms.count()) / 1000.0;
}

void add_tokens(std::atomic<std::uint64_t>& counter, std::int64_t n) {
  if (n > 0) counter.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
}

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
      start_time_(std::chrono::duration<double>(WallClock::now().time_since_epoch()).count()),
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
  for (const StepRecord& step : outcome.steps) {
    add_tokens(prompt_tokens_, step.usage.prompt_tokens);
    add_tokens(completion_tokens_, step.usage.completion_tokens);
  }
  if (!outcome.steps.empty()) {
    std::lock_guard lock(histograms_mu_);
    for (const StepRecord& step : outcome.steps) {
      request_durations_.try_emplace(step.name, kRequestBuckets).first->second.observe(seconds(step.latency));
    }
  }
  if (!outcome.ok() && outcome.error->kind == ErrorKind::api) {
    const ApiError& e = *outcome.error;
    std::lock_guard lock(api_errors_mu_);
    ++api_errors_[{e.code.empty() ? "none" : e.code, e.http_status}];
  }
  if (!outcome.ok() && outcome.error->kind != ErrorKind::cancelled) {
    std::lock_guard lock(failures_mu_);
    last_failure_[{task.round, task.id}] = static_cast<std::size_t>(outcome.error->kind);
  }
}

void Metrics::task_finished(const TaskResult& result) {
  const auto status = static_cast<std::size_t>(result.status);
  tasks_[status].fetch_add(1, std::memory_order_relaxed);
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

void Metrics::round_finished(std::uint32_t) {
  rounds_completed_.fetch_add(1, std::memory_order_relaxed);
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
               "Seconds each model call took, failed ones included, by pipeline step.");
    for (const auto& [step, h] : request_durations_) {
      out.histogram("cbm_request_duration_seconds", {{"step", step}}, {*h.bounds, h.counts, h.sum});
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
  out.family("cbm_tokens_total", "counter", "Tokens the platform reported for every model call, by kind.");
  out.sample("cbm_tokens_total", {{"kind", "prompt"}}, prompt_tokens_.load(relaxed));
  out.sample("cbm_tokens_total", {{"kind", "completion"}}, completion_tokens_.load(relaxed));
  out.family("cbm_rounds_completed_total", "counter", "Rounds over the topic list that ended.");
  out.sample("cbm_rounds_completed_total", {}, rounds_completed_.load(relaxed));
  out.family("process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch, in seconds.");
  out.sample("process_start_time_seconds", {}, start_time_);
  return out.text();
}

}  // namespace cbm
