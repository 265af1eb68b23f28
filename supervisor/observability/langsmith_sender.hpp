// LangSmithSender: delivers run records to LangSmith off the run's critical path.
//
// Who calls what
//   Any thread calls enqueue(): a push under a mutex, never I/O. One background thread takes up to
//   `batch_runs` records (or whatever has waited `batch_interval`) and POSTs them as one
//   {"post":[...],"patch":[...]} to {endpoint}/runs/batch with its own HttpClient; a post and a patch of
//   the same run in one batch travel as one post. Records leave in the order they were enqueued, so a
//   patch never reaches LangSmith before its post. close() flushes within a grace period, then stops.
//
// Failure costs traces, never the run: the queue is bounded (records and bytes) and a full queue
// drops the new record; 408, 5xx and transport errors are retried `max_retries` times (backoff about
// 0.5 s, 1 s, 2 s with jitter), a 429 waits for its Retry-After; a 409 means already ingested; any other
// status drops the batch. A root whose post is lost takes its later records (patch, children) with it:
// LangSmith would refuse them. Every dropped record is counted by reason.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "http_client.hpp"
#include "langsmith_run.hpp"
#include "langsmith_settings.hpp"
#include "logger.hpp"

namespace cbm {

struct SenderLimits {
  std::size_t max_queued_runs = 10000;
  std::size_t max_queued_bytes = 64u << 20;
  std::size_t batch_runs = 100;
  std::size_t batch_bytes = 16u << 20;  // LangSmith takes up to 20 MiB
  std::chrono::milliseconds batch_interval{1000};
  std::chrono::milliseconds request_timeout{10000};
  int max_retries = 3;
};

// What became of the records given to enqueue(). Each record is counted once.
struct SenderTotals {
  std::size_t sent = 0;     // accepted by LangSmith (409 included)
  std::size_t batches = 0;  // requests that delivered them
  std::size_t queue_full = 0;
  std::size_t rejected = 0;       // LangSmith refused their batch (a 4xx other than 408/409/429)
  std::size_t unreachable = 0;    // their batch failed every try
  std::size_t orphaned = 0;       // their root's post was lost
  std::size_t unsent_at_exit = 0;  // still queued when close()'s grace ran out

  std::size_t dropped() const { return queue_full + rejected + unreachable + orphaned + unsent_at_exit; }
};

struct RunOp {
  enum class Kind { post, patch };
  Kind kind = Kind::post;
  LangSmithRun run;
};

class LangSmithSender {
 public:
  LangSmithSender(LangSmithSettings settings, SenderLimits limits, Logger& log);
  ~LangSmithSender();  // close() with no grace if not closed yet
  LangSmithSender(const LangSmithSender&) = delete;
  LangSmithSender& operator=(const LangSmithSender&) = delete;

  // Queues `op`; false when it was dropped (queue full, its root lost, or closed).
  bool enqueue(RunOp op);

  // Sends what is queued within `grace` (a request in progress is cut off at its end), stops the
  // thread and returns the totals. Idempotent.
  SenderTotals close(std::chrono::milliseconds grace);
  // What became of the records so far (for the metrics); any thread.
  SenderTotals totals();

 private:
  enum class Delivery { sent, rejected, unreachable, abandoned };
  struct Queued {
    RunOp op;
    Clock::time_point at;
    std::size_t weight = 0;
  };
  struct Batch {
    std::vector<LangSmithRun> posts;
    std::vector<LangSmithRun> patches;
    std::size_t records = 0;
  };

  void run();
  Batch take_batch();                  // mu_ held
  void account(const Batch& b, Delivery d);  // mu_ held
  Delivery deliver(const Batch& b);
  bool pause(std::chrono::milliseconds delay);  // false: stopped while waiting
  std::chrono::milliseconds request_timeout();
  void note_failure(const std::string& why, std::size_t records);
  std::string render(const Batch& b) const;

  const LangSmithSettings settings_;
  const SenderLimits limits_;
  Logger& log_;
  const std::string url_;
  std::atomic<bool> abort_{false};
  HttpClient http_;  // the sender thread's only
  bool failing_ = false;  // sender thread only: the last delivery failed (logged once per outage)
  std::mt19937_64 rng_{std::random_device{}()};  // sender thread only: the backoff's draws
  std::uniform_real_distribution<double> jitter_{0.0, 1.0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  std::size_t queued_bytes_ = 0;
  std::unordered_set<std::string> lost_roots_;  // roots whose post was dropped while their attempt runs
  bool closing_ = false;
  bool done_ = false;
  std::optional<Clock::time_point> deadline_;
  SenderTotals totals_;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace cbm
