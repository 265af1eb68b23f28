#include "run_ledger.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "atomic_file.hpp"

namespace cbm {

RunLedger::RunLedger(const RunConfig& config) : config_(config), started_(WallClock::now()) {}

void RunLedger::attach(Journal journal) {
  std::lock_guard lock(mu_);
  journal_.emplace(std::move(journal));
}

RoundSummary& RunLedger::round_locked(std::uint32_t round) {
  auto [it, added] = rounds_.try_emplace(round);
  if (added) it->second.started = WallClock::now();
  return it->second;
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

void RunLedger::restore_batch_line(std::string_view line) {
  std::lock_guard lock(mu_);
  restored_batch_lines_.emplace_back(line);
}

std::vector<std::string> RunLedger::take_restored_batch_lines() {
  std::lock_guard lock(mu_);
  return std::exchange(restored_batch_lines_, {});
}

std::optional<std::string> RunLedger::journal_batch_line(std::string line) {
  std::lock_guard lock(mu_);
  if (!journal_) return std::nullopt;  // no journal: nothing to resume from, nothing to write
  journal_->append_batch_line(std::move(line));
  journal_->sync();
  return journal_->failure();
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

void RunLedger::record_unread(UnreadTopics unread) {
  std::lock_guard lock(mu_);
  // A resumed run holds records of topics it has not read yet: they are finished, not unread.
  if (auto it = done_.find(unread.round); it != done_.end()) {
    const auto& recorded = it->second;
    const std::uint64_t end = std::min<std::uint64_t>(unread.end_id.value_or(recorded.size()), recorded.size());
    for (std::uint64_t id = unread.first_id; id < end; ++id) unread.recorded += recorded[id] != 0 ? 1 : 0;
  }
  round_locked(unread.round).totals.add(unread);
  totals_.add(unread);
  unread_.push_back(unread);
  if (journal_) journal_->append(unread);
}

std::vector<UnreadTopics> RunLedger::unread() const {
  std::lock_guard lock(mu_);
  return unread_;
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
    RoundSummary& r = round_locked(round);
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

void RunLedger::mark_journal_finished(int exit_status) {
  std::lock_guard lock(mu_);
  if (journal_) journal_->mark_finished(exit_status);
}

void RunLedger::write_report(const std::filesystem::path& path, int exit_status) {
  std::lock_guard lock(mu_);
  if (!journal_) throw std::logic_error("the report's results come from the journal, and none is attached");
  ReportSummary summary;
  summary.totals = totals_;
  summary.prices = config_.prices.get();
  summary.search_engine = config_.pipeline.search_settings.engine;
  summary.started = started_;
  summary.finished = WallClock::now();
  summary.took = std::chrono::duration_cast<Clock::duration>(summary.finished - summary.started);
  summary.iterations_completed = rounds_completed_;
  summary.invalid_input_lines = invalid_lines_;
  summary.interrupted = interrupted_;
  summary.interrupted_by_signal = interrupted_by_;
  summary.abort_reason = abort_reason_locked();
  summary.exit_status = exit_status;

  AtomicFile out(path, config_.output_mode);
  ReportWriter report([&](std::string_view piece) { out.write(piece); }, summary, [&](JsonWriter& w) {
    write_run_config(w, config_, journal_->path());
    write_rounds(w, rounds_);
  });
  // The journal holds only the kept rounds' records (end_round compacts it as it drops a round).
  journal_->sync();
  journal_->for_each_record([&](std::string_view line) {
    if (const auto unread = unread_entry_of_journal_line(line)) {
      report.add_unread_encoded(*unread);
    } else if (is_batch_journal_line(line)) {
      return;  // a batch's ids, for --resume: not a result
    } else {
      report.add_encoded(line);
    }
  });
  report.finish();
  out.commit();
}

}  // namespace cbm
