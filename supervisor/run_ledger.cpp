#include "run_ledger.hpp"

#include "result_codec.hpp"

namespace cbm {
namespace {

double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

void key_str(JsonWriter& w, const char* key, std::string_view value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

// The Python tool's summary fields first (total_tasks, successful_tasks, average_execution_time).
void write_totals(JsonWriter& w, const RunTotals& t) {
  w.Key("total_tasks");
  w.Uint64(t.total);
  w.Key("successful_tasks");
  w.Uint64(t.succeeded);
  w.Key("failed_tasks");
  w.Uint64(t.failed);
  w.Key("cancelled_tasks");
  w.Uint64(t.cancelled);
  const double total = t.total == 0 ? 1.0 : static_cast<double>(t.total);
  w.Key("success_rate");
  w.Double(100.0 * static_cast<double>(t.succeeded) / total);
  w.Key("failure_rate");
  w.Double(100.0 * static_cast<double>(t.failed) / total);
  w.Key("average_execution_time");
  w.Double(t.timed_tasks == 0 ? 0.0 : seconds(t.execution_time_sum) / static_cast<double>(t.timed_tasks));
  w.Key("total_attempts");
  w.Uint64(t.attempts);
  w.Key("retries");
  w.Uint64(t.attempts > t.timed_tasks ? t.attempts - t.timed_tasks : 0);
  w.Key("usage");
  write_usage(w, t.usage);
}

}  // namespace

void RunTotals::add(const TaskResult& r) {
  ++total;
  switch (r.status) {
    case TaskStatus::succeeded:
      ++succeeded;
      break;
    case TaskStatus::failed:
      ++failed;
      break;
    case TaskStatus::cancelled:
      ++cancelled;
      break;
  }
  attempts += static_cast<std::size_t>(r.attempts);
  if (r.attempts > 0) {
    ++timed_tasks;
    execution_time_sum += r.execution_time;
  }
  usage += r.usage;
}

RunLedger::RunLedger(const RunConfig& config) : config_(config), started_(WallClock::now()) {}

void RunLedger::begin_round(std::uint32_t round, std::size_t tasks) {
  std::lock_guard lock(mu_);
  Round& r = rounds_[round];
  r.number = round;
  r.planned = tasks;
  r.started = WallClock::now();
}

bool RunLedger::record(TaskResult result) {
  std::lock_guard lock(mu_);
  Round& r = rounds_[result.round];
  r.number = result.round;
  if (r.results.contains(result.id)) return false;
  r.totals.add(result);
  totals_.add(result);
  const std::uint64_t id = result.id;
  r.results.emplace(id, std::move(result));
  return true;
}

void RunLedger::end_round(std::uint32_t round) {
  std::lock_guard lock(mu_);
  rounds_[round].finished = WallClock::now();
}

void RunLedger::mark_interrupted(int signal) {
  std::lock_guard lock(mu_);
  if (!interrupted_by_) interrupted_by_ = signal;
}

void RunLedger::mark_aborted(std::string reason) {
  std::lock_guard lock(mu_);
  if (!abort_reason_) abort_reason_ = std::move(reason);
}

RunTotals RunLedger::totals() const {
  std::lock_guard lock(mu_);
  return totals_;
}

std::optional<int> RunLedger::interrupted_by() const {
  std::lock_guard lock(mu_);
  return interrupted_by_;
}

std::optional<std::string> RunLedger::abort_reason() const {
  std::lock_guard lock(mu_);
  return abort_reason_;
}

bool RunLedger::has(std::uint32_t round, std::uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = rounds_.find(round);
  return it != rounds_.end() && it->second.results.contains(id);
}

std::string RunLedger::report_json(int exit_status) const {
  std::lock_guard lock(mu_);
  const auto now = WallClock::now();
  const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(now - started_);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();

  w.Key("summary");
  w.StartObject();
  write_totals(w, totals_);
  w.Key("total_time");
  w.Double(seconds(wall));
  w.Key("throughput_tasks_per_second");
  w.Double(wall.count() == 0 ? 0.0 : static_cast<double>(totals_.total) / seconds(wall));
  std::size_t completed = 0;
  for (const auto& [n, r] : rounds_) completed += (r.finished && r.totals.total == r.planned) ? 1 : 0;
  w.Key("iterations_completed");
  w.Uint64(completed);
  w.Key("interrupted");
  w.Bool(interrupted_by_.has_value());
  w.Key("interrupted_by_signal");
  interrupted_by_ ? w.Int(*interrupted_by_) : w.Null();
  w.Key("aborted");
  w.Bool(abort_reason_.has_value());
  w.Key("abort_reason");
  abort_reason_ ? w.String(abort_reason_->c_str(), static_cast<rapidjson::SizeType>(abort_reason_->size()))
                : w.Null();
  w.Key("exit_status");
  w.Int(exit_status);
  key_str(w, "started_at", iso8601(started_));
  key_str(w, "finished_at", iso8601(now));
  w.EndObject();

  w.Key("config");
  w.StartObject();
  key_str(w, "mode", to_string(config_.mode));
  w.Key("concurrency");
  w.Int(config_.concurrency);
  w.Key("iterations");
  w.Int(config_.iterations);
  w.Key("timeout");
  w.Double(seconds(config_.timeout));
  w.Key("delay");
  w.Double(seconds(config_.delay));
  w.Key("max_retries");
  w.Int(config_.retry.max_retries);
  key_str(w, "chat_model", config_.pipeline.chat_model);
  key_str(w, "tool_model", config_.pipeline.tool_model);
  w.Key("search");
  w.Bool(config_.pipeline.search);
  key_str(w, "base_url", config_.client.base_url);
  w.EndObject();

  w.Key("rounds");
  w.StartArray();
  for (const auto& [n, r] : rounds_) {
    w.StartObject();
    w.Key("round");
    w.Uint(n);
    w.Key("planned_tasks");
    w.Uint64(r.planned);
    write_totals(w, r.totals);
    key_str(w, "started_at", iso8601(r.started));
    w.Key("finished_at");
    if (r.finished) {
      const std::string f = iso8601(*r.finished);
      w.String(f.c_str(), static_cast<rapidjson::SizeType>(f.size()));
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();

  w.Key("results");
  w.StartArray();
  for (const auto& [n, r] : rounds_) {
    for (const auto& [id, result] : r.results) write_task_result(w, result);
  }
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace cbm
