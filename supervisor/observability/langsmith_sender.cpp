#include "langsmith_sender.hpp"

#include <algorithm>
#include <unordered_map>

#include "backoff.hpp"
#include "bigmodel_client.hpp"
#include "secret_scrubber.hpp"

namespace cbm {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kMaxRetryAfter{60000};

HttpOptions http_options(const std::atomic<bool>* abort) {
  HttpOptions o;
  o.connect_timeout = milliseconds(5000);
  o.low_speed_time = std::chrono::seconds(10);
  o.max_body_bytes = 1u << 20;
  o.abort = abort;
  return o;
}

// As LangSmith's SDK: about 0.5 s, 1 s, 2 s... up to 32 s, each between 75% and all of it.
constexpr Backoff kBackoff{milliseconds(500), milliseconds(32000), 0.25};

}  // namespace

LangSmithSender::LangSmithSender(LangSmithSettings settings, SenderLimits limits, Logger& log)
    : settings_(std::move(settings)),
      limits_(limits),
      log_(log),
      url_(settings_.endpoint + "/runs/batch"),
      http_(http_options(&abort_)),
      thread_([this] { run(); }) {}

LangSmithSender::~LangSmithSender() { close(milliseconds(0)); }

bool LangSmithSender::enqueue(RunOp op) {
  const std::size_t weight = op.run.weight();
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    const bool root_post = op.kind == RunOp::Kind::post && op.run.is_root() && !op.run.end_time;
    if (lost_roots_.contains(op.run.trace_id)) {
      ++totals_.orphaned;
      if (op.kind == RunOp::Kind::patch && op.run.is_root()) lost_roots_.erase(op.run.trace_id);
      return false;
    }
    if (closing_ || queue_.size() >= limits_.max_queued_runs ||
        queued_bytes_ + weight > limits_.max_queued_bytes) {
      ++totals_.queue_full;
      if (root_post) lost_roots_.insert(op.run.id);
      return false;
    }
    queue_.push_back({std::move(op), Clock::now(), weight});
    queued_bytes_ += weight;
    // The first record starts the batch interval; a full batch goes at once.
    wake = queue_.size() == 1 || queue_.size() == limits_.batch_runs;
  }
  if (wake) cv_.notify_all();
  return true;
}

SenderTotals LangSmithSender::close(milliseconds grace) {
  {
    std::unique_lock lk(mu_);
    if (!thread_.joinable()) return totals_;
    closing_ = true;
    deadline_ = Clock::now() + grace;
    cv_.notify_all();
    cv_.wait_until(lk, *deadline_, [this] { return done_; });
  }
  // Past the grace: a request in progress aborts within a second (HttpOptions::abort).
  abort_ = true;
  cv_.notify_all();
  thread_.join();
  std::lock_guard lk(mu_);
  return totals_;
}

void LangSmithSender::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    if (abort_ || (closing_ && Clock::now() >= *deadline_)) break;
    if (queue_.empty()) {
      if (closing_) break;
      cv_.wait(lk);
      continue;
    }
    const Clock::time_point due = queue_.front().at + limits_.batch_interval;
    if (!closing_ && queue_.size() < limits_.batch_runs && Clock::now() < due) {
      cv_.wait_until(lk, due);
      continue;
    }
    Batch batch = take_batch();
    if (batch.records == 0) continue;
    lk.unlock();
    const Delivery d = deliver(batch);
    lk.lock();
    account(batch, d);
  }
  totals_.unsent_at_exit += queue_.size();
  queue_.clear();
  queued_bytes_ = 0;
  done_ = true;
  cv_.notify_all();
}

LangSmithSender::Batch LangSmithSender::take_batch() {
  Batch b;
  std::size_t bytes = 0;
  std::unordered_map<std::string, std::size_t> post_index;
  while (!queue_.empty() && b.records < limits_.batch_runs &&
         (b.records == 0 || bytes + queue_.front().weight <= limits_.batch_bytes)) {
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= q.weight;
    LangSmithRun& run = q.op.run;
    // A batch lost since this record was queued may have held its root's post.
    if (lost_roots_.contains(run.trace_id)) {
      ++totals_.orphaned;
      if (q.op.kind == RunOp::Kind::patch && run.is_root()) lost_roots_.erase(run.trace_id);
      continue;
    }
    bytes += q.weight;
    ++b.records;
    if (q.op.kind == RunOp::Kind::post) {
      post_index.emplace(run.id, b.posts.size());
      b.posts.push_back(std::move(run));
    } else if (auto it = post_index.find(run.id); it != post_index.end()) {
      LangSmithRun& post = b.posts[it->second];
      post.end_time = run.end_time;
      if (!run.outputs.empty()) post.outputs = std::move(run.outputs);
      if (run.error) post.error = std::move(run.error);
    } else {
      b.patches.push_back(std::move(run));
    }
  }
  return b;
}

void LangSmithSender::account(const Batch& b, Delivery d) {
  switch (d) {
    case Delivery::sent:
      totals_.sent += b.records;
      ++totals_.batches;
      return;
    case Delivery::rejected:
      totals_.rejected += b.records;
      break;
    case Delivery::unreachable:
      totals_.unreachable += b.records;
      break;
    case Delivery::abandoned:
      totals_.unsent_at_exit += b.records;
      break;
  }
  // An open root that did not arrive: its patch and children would be refused.
  for (const auto& run : b.posts) {
    if (run.is_root() && !run.end_time) lost_roots_.insert(run.id);
  }
}

std::string LangSmithSender::render(const Batch& b) const {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("post");
  w.StartArray();
  for (const auto& run : b.posts) write_run_post(w, run, settings_.project);
  w.EndArray();
  w.Key("patch");
  w.StartArray();
  for (const auto& run : b.patches) write_run_patch(w, run);
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

LangSmithSender::Delivery LangSmithSender::deliver(const Batch& b) {
  HttpRequest request{url_, {"Content-Type: application/json"}, render(b)};
  if (!settings_.api_key.empty()) request.headers.push_back("x-api-key: " + settings_.api_key);
  if (!settings_.workspace_id.empty()) request.headers.push_back("X-Tenant-Id: " + settings_.workspace_id);
  for (int retry = 0;; ++retry) {
    if (abort_) return Delivery::abandoned;
    auto reply = http_.post(request, request_timeout());
    std::string failure;
    std::optional<milliseconds> wait;
    if (reply) {
      const long status = reply->status;
      if ((status >= 200 && status < 300) || status == 409) {
        if (failing_) log_.info("langsmith: delivering traces again");
        failing_ = false;
        return Delivery::sent;
      }
      failure = "HTTP " + std::to_string(status);
      if (status != 408 && status != 429 && status < 500) {
        note_failure(failure + " " + scrub_secret(reply->body, settings_.api_key).substr(0, 200), b.records);
        return Delivery::rejected;
      }
      if (status == 429) wait = parse_retry_after(reply->retry_after, reply->retry_after_ms, WallClock::now());
    } else {
      if (reply.error().kind == TransportError::Kind::aborted) return Delivery::abandoned;
      failure = reply.error().message;
    }
    if (retry >= limits_.max_retries) {
      note_failure(scrub_secret(std::move(failure), settings_.api_key), b.records);
      return Delivery::unreachable;
    }
    if (!pause(wait ? std::min(*wait, kMaxRetryAfter) : kBackoff.delay(retry, jitter_(rng_)))) {
      return Delivery::abandoned;
    }
  }
}

bool LangSmithSender::pause(milliseconds delay) {
  const Clock::time_point until = Clock::now() + delay;
  std::unique_lock lk(mu_);
  for (;;) {
    if (abort_) return false;
    const Clock::time_point now = Clock::now();
    if (deadline_ && now >= *deadline_) return false;
    if (now >= until) return true;
    cv_.wait_until(lk, deadline_ ? std::min(until, *deadline_) : until);
  }
}

milliseconds LangSmithSender::request_timeout() {
  std::lock_guard lk(mu_);
  if (!deadline_) return limits_.request_timeout;
  return std::min(limits_.request_timeout, std::chrono::ceil<milliseconds>(*deadline_ - Clock::now()));
}

void LangSmithSender::note_failure(const std::string& why, std::size_t records) {
  if (failing_) return;
  failing_ = true;
  log_.warn("langsmith: " + std::to_string(records) + " run records not delivered to " + url_ + ": " + why +
            "; traces are dropped while this lasts (the analysis goes on)");
}

SenderTotals LangSmithSender::totals() {
  std::lock_guard lk(mu_);
  return totals_;
}

}  // namespace cbm
