#include "run_ledger.hpp"

#include <stdexcept>

#include "atomic_file.hpp"
#include "result_codec.hpp"

namespace cbm {
namespace {

double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

}  // namespace

RunLedger::RunLedger(const RunConfig& config) : config_(config), started_(WallClock::now()) {}

void RunLedger::attach(Journal journal) {
  std::lock_guard lock(mu_);
  journal_.emplace(std::move(journal));
}

RunLedger::Round& RunLedger::round_locked(std::uint32_t round) {
  Round& r = rounds_[round];
  if (r.number == 0) {
    r.number = round;
    r.started = WallClock::now();
  }
  return r;
}

void RunLedger::begin_round(std::uint32_t round) {
  std::lock_guard lock(mu_);
  round_locked(round);
  done_[round];
}

void RunLedger::count_locked(const TaskResult& r) {
  auto& done = done_[r.round];
  if (done.size() <= r.id) done.resize(std::max<std::size_t>(r.id + 1, done.size() * 2), 0);
  done[r.id] = 1;
  round_locked(r.round).totals.add(r);
  totals_.add(r);
}

void RunLedger::restore(const TaskResult& result) {
  std::lock_guard lock(mu_);
  if (has_locked(result.round, result.id)) return;
  count_locked(result);
  restored_.add(result);
}

bool RunLedger::restored_topic_matches(std::uint32_t round, std::uint64_t id, std::uint64_t hash) const {
  std::lock_guard lock(mu_);
  return restored_.matches(round, id, hash);
}

bool RunLedger::record(TaskResult result) {
  bool recorded = false;
  {
    std::lock_guard lock(mu_);
    recorded = record_locked(std::move(result));
  }
  if (recorded) deliver();
  return recorded;
}

bool RunLedger::record_locked(TaskResult result) {
  if (has_locked(result.round, result.id)) return false;
  count_locked(result);
  // The original first, then the copies that waited for it.
  std::vector<TaskResult> copies = duplicates_.on_recorded(result);
  // Journalled before posted: another thread's delivery may take it from the outbox at once.
  if (journal_) journal_->append(result);
  outbox_.post_record(std::move(result));
  for (auto& copy : copies) record_locked(std::move(copy));
  return true;
}

void RunLedger::deliver() {
  if (auto failure = outbox_.deliver()) mark_aborted("a result observer failed: " + *failure);
}

void RunLedger::expect_duplicates(std::uint32_t, std::uint64_t id) {
  std::lock_guard lock(mu_);
  duplicates_.expect(id);
}

void RunLedger::record_duplicate(std::uint32_t round, std::uint64_t duplicate, std::uint64_t original) {
  {
    std::lock_guard lock(mu_);
    if (has_locked(round, duplicate)) return;
    auto copy = duplicates_.copy_or_wait(duplicate, original);
    if (!copy) return;
    record_locked(std::move(*copy));
  }
  deliver();
}

bool RunLedger::holds_result(std::uint32_t, std::uint64_t id) const {
  std::lock_guard lock(mu_);
  return duplicates_.holds(id);
}

bool RunLedger::has_locked(std::uint32_t round, std::uint64_t id) const {
  auto it = done_.find(round);
  return it != done_.end() && id < it->second.size() && it->second[id] != 0;
}

bool RunLedger::has(std::uint32_t round, std::uint64_t id) const {
  std::lock_guard lock(mu_);
  return has_locked(round, id);
}

void RunLedger::end_round(std::uint32_t round, std::size_t planned) {
  {
    std::lock_guard lock(mu_);
    Round& r = round_locked(round);
    r.planned = planned;
    r.finished = WallClock::now();
    if (journal_) journal_->sync();
    if (r.totals.total == planned && !interrupted_ && !abort_reason_locked()) ++rounds_completed_;
    done_.erase(round);  // memory stays flat: a finished round needs no done-flags
    restored_.forget(round);
    duplicates_.clear();
    outbox_.post_round_end(round);
    // Only the kept rounds' totals stay (and, in the journal, their records).
    const auto keep = static_cast<std::size_t>(config_.keep_rounds);
    if (keep > 0 && rounds_.size() > keep) {
      while (rounds_.size() > keep) rounds_.erase(rounds_.begin());
      if (journal_) journal_->compact(rounds_.begin()->first);
    }
  }
  deliver();
}

void RunLedger::mark_interrupted(int signal) {
  std::lock_guard lock(mu_);
  if (!interrupted_) interrupted_by_ = signal;
  interrupted_ = true;
}

void RunLedger::mark_aborted(std::string reason) {
  std::lock_guard lock(mu_);
  if (!abort_reason_locked()) abort_reason_ = std::move(reason);
}

void RunLedger::note_invalid_lines(std::size_t n) {
  std::lock_guard lock(mu_);
  invalid_lines_ += n;
}

RunTotals RunLedger::totals() const {
  std::lock_guard lock(mu_);
  return totals_;
}

std::optional<std::string> RunLedger::abort_reason() const {
  std::lock_guard lock(mu_);
  return abort_reason_locked();
}

// Results that cannot be made durable must not pile up unjournaled: a failed journal aborts the run (exit 3).
std::optional<std::string> RunLedger::abort_reason_locked() const {
  if (abort_reason_) return abort_reason_;
  if (journal_) {
    if (auto failure = journal_->failure()) return "cannot write the journal: " + *failure;
  }
  return std::nullopt;
}

void RunLedger::write_report(const std::filesystem::path& path, int exit_status) {
  std::lock_guard lock(mu_);
  if (!journal_) throw std::logic_error("the report's results come from the journal, and none is attached");
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
  w.Key("iterations_completed");
  w.Uint64(rounds_completed_);
  w.Key("invalid_input_lines");
  w.Uint64(invalid_lines_);
  w.Key("interrupted");
  w.Bool(interrupted_);
  w.Key("interrupted_by_signal");
  interrupted_by_ != 0 ? w.Int(interrupted_by_) : w.Null();
  w.Key("aborted");
  const auto abort_reason = abort_reason_locked();
  w.Bool(abort_reason.has_value());
  w.Key("abort_reason");
  abort_reason ? w.String(abort_reason->c_str(), static_cast<rapidjson::SizeType>(abort_reason->size())) : w.Null();
  w.Key("exit_status");
  w.Int(exit_status);
  write_key_string(w, "started_at", iso8601(started_));
  write_key_string(w, "finished_at", iso8601(now));
  w.EndObject();

  w.Key("config");
  w.StartObject();
  write_key_string(w, "mode", to_string(config_.mode));
  w.Key("concurrency");
  w.Int(config_.concurrency);
  w.Key("iterations");
  w.Int(config_.iterations);
  w.Key("rpm");
  w.Int64(config_.rate.requests_per_minute);
  w.Key("tpm");
  w.Int64(config_.rate.tokens_per_minute);
  w.Key("timeout");
  w.Double(seconds(config_.timeout));
  w.Key("delay");
  w.Double(seconds(config_.delay));
  w.Key("max_retries");
  w.Int(config_.retry.max_retries);
  write_key_string(w, "chat_model", config_.pipeline.chat_model);
  write_key_string(w, "tool_model", config_.pipeline.tool_model);
  w.Key("search");
  w.Bool(config_.pipeline.search);
  write_key_string(w, "base_url", config_.client.base_url);
  write_key_string(w, "journal", journal_->path().string());
  w.Key("keep_rounds");
  w.Int(config_.keep_rounds);
  w.EndObject();

  w.Key("rounds");
  w.StartArray();
  for (const auto& [n, r] : rounds_) {
    w.StartObject();
    w.Key("round");
    w.Uint(n);
    w.Key("planned_tasks");
    r.finished ? w.Uint64(r.planned) : w.Null();
    write_totals(w, r.totals);
    write_key_string(w, "started_at", iso8601(r.started));
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
  w.EndArray();
  w.EndObject();

  // The results come from the journal, spliced in as they are: the document above ends in
  // `"results":[]}`, which is split to stream them between the brackets.
  std::string_view doc(buf.GetString(), buf.GetSize());
  doc.remove_suffix(2);
  AtomicFile out(path);
  out.write(doc);
  // The journal holds only the kept rounds' records (end_round compacts it as it drops a round).
  journal_->sync();
  bool first = true;
  journal_->for_each_record([&](std::string_view line) {
    if (!first) out.write(",");
    first = false;
    out.write(line);
  });
  out.write("]}\n");
  out.commit();
}

}  // namespace cbm
