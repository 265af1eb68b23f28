// RunLedger: the run's terminal records, each task's exactly once, and the counts over them.
//
// Every task of every round must end here exactly once (the "nothing lost, nothing duplicated"
// guarantee): `record` refuses a second record for the same (round, id). A record is counted, handed to
// the journal (which the ledger owns: its writer thread writes the record), and only then announced to
// the observer, outside the ledger's lock (record_outbox.hpp says what order holds). The ledger keeps
// only counters, a done-flag per id of the rounds in progress and the totals of the last --keep-rounds
// rounds, so its memory stays flat however long a monitor runs; the report is rebuilt by streaming the
// journal (report_writer.hpp writes it).
//
// What it drives under its one lock, each in a file of its own: the copies for repeated topics
// (duplicate_resolver.hpp), so an original and its copies are recorded in one step, and the topics of
// the records --resume restored (resume_index.hpp). Thread-safe: the threading executor records from
// its threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "duplicate_resolver.hpp"
#include "journal.hpp"
#include "record_outbox.hpp"
#include "report_writer.hpp"
#include "resume_index.hpp"
#include "run_config.hpp"
#include "run_observer.hpp"
#include "run_totals.hpp"
#include "task.hpp"

namespace cbm {

class RunLedger {
 public:
  explicit RunLedger(const RunConfig& config);
  // From now on every record goes to `journal`, which the ledger keeps until it is destroyed (and so
  // writes and syncs what is queued after the last record). Attach before the first record. Without
  // a journal the ledger only counts (and cannot write a report).
  void attach(Journal journal);
  // `observer` (which must outlive the ledger) hears of every terminal record and finished round, each
  // once, outside the ledger's lock and one call at a time: it may call the ledger, but not record.
  void observe(RunObserver& observer) { outbox_.observe(observer); }

  void begin_round(std::uint32_t round);
  // Batch API ids (journal.hpp, batch_record.hpp): a line --resume read back, kept for the batch
  // transport, which takes them once; and a new one, written and synced before this returns
  // (the call it announces comes after). Returns the journal's failure, if it has one now.
  void restore_batch_line(std::string_view line);
  std::vector<std::string> take_restored_batch_lines();
  std::optional<std::string> journal_batch_line(std::string line);
  // Counts a record read back from the journal by --resume (not written again, not announced).
  void restore(const TaskResult& result);
  // Journals the terminal record, and returns once the observer has heard of it. False (nothing
  // recorded) when (round, id) already has one.
  bool record(TaskResult result);
  bool has(std::uint32_t round, std::uint64_t id) const;
  // A stop left these topics of the round unread (TaskBook::cancel_waiting): counted apart from the
  // records (RunTotals::not_read), journalled as one line, listed in the report's `not_read`.
  // (its `recorded` counted here: a resumed run may hold records inside the range).
  void record_unread(UnreadTopics unread);
  // The ranges recorded by this run, oldest first (a stop ends the run: at most one a round).
  std::vector<UnreadTopics> unread() const;
  // --resume joins journal records to topics by id: false when the record restored for (round, id)
  // is of another topic (the input changed since the journal was written).
  bool restored_topic_matches(std::uint32_t round, std::uint64_t id, std::uint64_t topic_hash) const;

  // Repeated topics (see duplicate_topics.hpp): keep the record of `id` when it comes, to copy it
  // for its later occurrences; record `duplicate` as a copy of `original` now or when it ends.
  void expect_duplicates(std::uint32_t round, std::uint64_t id);
  void record_duplicate(std::uint32_t round, std::uint64_t duplicate, std::uint64_t original);
  bool holds_result(std::uint32_t round, std::uint64_t id) const;
  // `planned`: how many topics the round had.
  void end_round(std::uint32_t round, std::size_t planned);

  // A stop from outside the run ended it early; `signal` carried the request (0: none did).
  void mark_interrupted(int signal);
  void mark_aborted(std::string reason);
  void note_invalid_lines(std::size_t n);

  RunTotals totals() const;
  std::optional<std::string> abort_reason() const;

  // Writes the report (README "The report") atomically, mode config.output_mode, the results streamed from the journal (after
  // syncing it). Throws std::system_error when the file cannot be written, std::logic_error when no
  // journal is attached.
  void write_report(const std::filesystem::path& path, int exit_status);
  // The run did all it was asked: the journal gets its end-of-run line (journal.hpp). Call last.
  void mark_journal_finished(int exit_status);

 private:
  RoundSummary& round_locked(std::uint32_t round);
  void count_locked(const TaskResult& r);
  bool has_locked(std::uint32_t round, std::uint64_t id) const;
  bool record_locked(TaskResult result);
  std::optional<std::string> abort_reason_locked() const;
  // Outside the lock: tells the observer what was recorded (by this thread or another).
  void deliver();

  const RunConfig& config_;
  RecordOutbox outbox_;
  mutable std::mutex mu_;
  std::optional<Journal> journal_;
  WallClock::time_point started_;
  std::map<std::uint32_t, RoundSummary> rounds_;             // the last keep_rounds rounds
  std::map<std::uint32_t, std::vector<std::uint8_t>> done_;  // rounds in progress: id -> recorded
  RunTotals totals_;
  std::vector<UnreadTopics> unread_;
  std::vector<std::string> restored_batch_lines_;
  DuplicateResolver duplicates_;  // of the round in progress
  ResumeIndex restored_;
  std::size_t rounds_completed_ = 0;
  std::size_t invalid_lines_ = 0;
  bool interrupted_ = false;
  int interrupted_by_ = 0;
  std::optional<std::string> abort_reason_;
};

}  // namespace cbm
