// Metrics: the run's numbers for a Prometheus scrape (--metrics-addr), kept as a RunObserver.
// Counters and gauges are relaxed atomics; the histograms and the retry bookkeeping each take a small
// mutex held only to add or copy a few numbers, so executor threads (and the ledger's announcements,
// which every record waits for) never wait on a scrape for long. Counters start at zero with the
// process, as Prometheus expects (a resumed run counts only its own work).
//
// What is counted, and when:
//   cbm_tasks_total{outcome}             terminal records (succeeded | failed | cancelled), copies of
//                                        duplicate topics included
//   cbm_attempts_total{result}           ended attempts: ok, or the error class of the failure
//                                        (retryable | task_fatal | run_fatal | wait_until), or
//                                        cancelled (a stop)
//   cbm_api_errors_total{code,http_status} error answers from the platform (an error status, an HTTP
//                                        200 error body or stream frame), by its code ("none" when it
//                                        had none) and HTTP status
//   cbm_retries_total{kind}              attempts started again after a failure, by that failure's
//                                        kind (only retryable failures are retried)
//   cbm_task_duration_seconds{outcome}   first attempt's start to terminal record, retries and backoff
//                                        included; tasks that never ran and duplicates' copies excluded
//   cbm_request_duration_seconds{step,model}  each model call that ended, failed ones included (step
//                                        search | analysis); a crashed worker's calls are lost with it
//   cbm_in_flight                        attempts running now
//   cbm_quota_paused_until_seconds       while a usage cap (1308, 1310) pauses dispatch, when it ends
//                                        (Unix time); 0 when not paused
//   cbm_concurrency_limit                the effective in-flight limit (--concurrency until the
//                                        platform's 429s lower it)
//   cbm_worker_restarts_total            unexpected worker deaths (multiprocessing)
//   cbm_tokens_total{kind,model}         prompt and completion tokens of every returned model call
//   cbm_rounds_completed_total           rounds ended (a stop cuts the last one short)
//   cbm_last_round_success_timestamp_seconds  when the last round in which every task succeeded ended
//                                        (Unix time; 0: none yet): a monitor's staleness alert
//   cbm_langsmith_dropped_total{reason}  LangSmith run records lost (queue_full | rejected | unreachable |
//                                        orphaned | unsent_at_exit); cbm_langsmith_sent_total: delivered
//   cbm_build_info{version}              1, labelled with the program's version
//   process_start_time_seconds           when the supervisor started (Unix time)
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "langsmith_sender.hpp"
#include "run_observer.hpp"

namespace cbm {

class Metrics final : public RunObserver {
 public:
  // `concurrency`: the configured limit, the limit gauge's value until the executor moves it.
  explicit Metrics(int concurrency);

  void attempt_started(const Task& task, int worker) override;
  void attempt_ended(const Task& task, const AttemptOutcome& outcome, int worker) override;
  void task_finished(const TaskResult& result) override;
  void worker_restarted(int worker) override;
  void limit_changed(int effective) override;
  void round_finished(std::uint32_t round) override;
  void quota_paused(std::optional<WallClock::time_point> until) override;

  // Where the LangSmith counters come from (set once, before the run; none: not rendered).
  void trace_totals(std::function<SenderTotals()> source) { trace_totals_ = std::move(source); }
  // A fleet node's counts (docs/fleet.md): tasks it reclaimed from other nodes, results it finished
  // after another node had (not written: duplicates), tasks it dead-lettered. Rendered once set.
  void fleet_counts(std::uint64_t reclaimed, std::uint64_t duplicates, std::uint64_t dead_lettered) {
    fleet_reclaimed_.store(reclaimed, std::memory_order_relaxed);
    fleet_duplicates_.store(duplicates, std::memory_order_relaxed);
    fleet_dead_lettered_.store(dead_lettered, std::memory_order_relaxed);
    fleet_.store(true, std::memory_order_release);
  }

  // The exposition document (Prometheus text format 0.0.4). Safe to call from any thread.
  std::string render() const;

  // Histogram bucket upper bounds, in seconds.
  static const std::vector<double> kTaskBuckets;
  static const std::vector<double> kRequestBuckets;

 private:
  struct Histogram {
    explicit Histogram(const std::vector<double>& b) : bounds(&b), counts(b.size() + 1, 0) {}
    void observe(double v);
    const std::vector<double>* bounds;
    std::vector<std::uint64_t> counts;  // per bucket, the last one above every bound
    double sum = 0.0;
  };
  using Counter = std::atomic<std::uint64_t>;
  static constexpr std::size_t kStatuses = 3;  // TaskStatus
  static constexpr std::size_t kResults = 6;   // ok, the four error classes, cancelled
  static constexpr std::size_t kKinds = 9;     // ErrorKind

  std::array<Counter, kStatuses> tasks_{};
  std::array<Counter, kResults> attempts_{};
  std::array<Counter, kKinds> retries_{};
  Counter worker_restarts_{0};
  Counter rounds_completed_{0};
  std::atomic<double> last_round_success_{0.0};
  std::atomic<std::int64_t> in_flight_{0};
  std::atomic<int> limit_;
  std::atomic<std::int64_t> paused_until_{0};  // Unix seconds; 0: not paused
  double start_time_;

  struct Tokens {
    std::uint64_t prompt = 0;
    std::uint64_t completion = 0;
  };
  using StepModel = std::pair<std::string, std::string>;

  mutable std::mutex histograms_mu_;  // also guards tokens_ and failed_rounds_
  std::vector<Histogram> task_durations_;            // by TaskStatus
  std::map<StepModel, Histogram> request_durations_;  // by step name and model
  std::map<std::string, Tokens> tokens_;              // by model
  std::map<std::uint32_t, bool> round_failed_;        // rounds in progress: did a task not succeed?
  std::function<SenderTotals()> trace_totals_;
  std::atomic<bool> fleet_{false};
  std::atomic<std::uint64_t> fleet_reclaimed_{0}, fleet_duplicates_{0}, fleet_dead_lettered_{0};

  mutable std::mutex api_errors_mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> api_errors_;  // by (code, HTTP status)

  // The kind of each task's last failed attempt, until its next attempt starts or it ends.
  std::mutex failures_mu_;
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::size_t> last_failure_;
};

}  // namespace cbm
