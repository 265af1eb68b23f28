// Journal: every terminal result, appended as one JSON line the moment it is known (JSONL).
//
// Line 1 is a header with the settings that change results (models, prompts, search); every other
// line is a report entry (the `results[i]` object, which carries its round and id); or a round's
// topics a stop left unread ({"not_read": {...}}: UnreadTopics, result_codec.hpp), which --resume
// drops (those topics run again) and the report lists apart (`not_read`); or a Batch API file's or
// batch's ids ({"batch": {...}}: batch_record.hpp), which --resume keeps and hands to the run, and the
// report leaves out; or, last, the end-of-run
// line `{"journal_end":true,"exit_status":N}`, appended once a run has done all it was asked (not
// stopped, not aborted, its report written). A journal without it holds an unfinished run: a new run
// does not replace it unless told (--fresh; run_files.hpp), and --resume drops the line as it
// continues a finished one.
//
// Files: opened never through a link, created 0600 whatever the umask (output_file.hpp); one run at a
// time holds a journal (journal_lock.hpp).
//
// Who writes: append() only queues the record. The journal's own writer thread encodes what is queued
// and appends it with one write(2) per batch to an O_APPEND file, so the executor's loop pays neither
// for the encoding nor for the disk. The queue is short (the writer takes all of it at once) and
// bounded: append() blocks while kMaxQueued records (or kMaxQueuedBytes) wait, so a slow disk slows
// the run down instead of growing its memory.
//
// Durability policy: a record is in the page cache about kGather (2 ms) after append(), and a kill -9 of the
// supervisor loses only what was still queued (docs/design.md, "Guarantees": "at most the results not yet
// appended"; --resume runs those again). fdatasync runs at most about a second after a write, at each
// round's end (sync()) and at exit: a power cut loses at most about a second of results.
//
// Whole lines only: after a failed write (disk full...) the journal takes no more records (failure()
// says why, and the run aborts), so a line cut short can only be the last one. Readers skip a last
// line without its newline; open_for_resume() drops it (and cancelled records, which are to be run
// again) by rewriting the journal atomically before appending to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "request_settings.hpp"
#include "run_config.hpp"
#include "task.hpp"
#include "unique_fd.hpp"

namespace cbm {

// A journal line of a Batch API file or batch (`{"batch":...}`).
inline bool is_batch_journal_line(std::string_view line) { return line.starts_with("{\"batch\":"); }

// A stop came while open_for_resume read the journal (which it left unchanged).
struct JournalReadStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The settings that change results, as the header stores them, and their fingerprint.
struct JournalSettings {
  std::string chat_model;
  std::string tool_model;
  bool search = true;
  std::string prompts_digest;  // FNV-1a 64 of the four templates, hex
  ModelSettings model;         // temperature, top_p, max_tokens, thinking, response_format
  SearchVia search_via = SearchVia::tool;
  SearchSettings search_settings;  // engine, recency, domain, count, content size
  ApiFlavor api_flavor = ApiFlavor::bigmodel;

  static JournalSettings of(const RunConfig& config);
  // "--temperature: 0.2 in the journal, 0.6 now; ..." for each setting that differs (empty: none),
  // named by its command-line flag; `where` names what holds these settings (a fleet's job).
  std::string differences(const JournalSettings& now, std::string_view where = "the journal") const;
  // The one-line JSON form the journal's header stores (a fleet job's settings too: docs/fleet.md),
  // and its reading (nullopt when it is not one).
  std::string encode() const;
  static std::optional<JournalSettings> decode(const std::string& line);
};

class Journal {
 public:
  // append() blocks while this many records, or this many bytes of them, wait for the writer.
  static constexpr std::size_t kMaxQueued = 4096;
  static constexpr std::size_t kMaxQueuedBytes = 8u << 20;
  static constexpr std::chrono::seconds kSyncInterval{1};
  static constexpr std::chrono::milliseconds kGather{2};  // the writer lets a batch gather this long

  // What an existing journal file holds, for a new run's check before it replaces it.
  struct Found {
    bool journal = false;   // its first line is this program's journal header
    bool finished = false;  // its last line is the end-of-run line
    std::size_t results = 0;  // records but cancelled ones (--resume runs those again)
  };
  // nullopt when there is no file, or an empty one (or not a regular file: the open refuses that).
  static std::optional<Found> inspect(const std::filesystem::path& path);

  // Starts a new journal (truncating any old one) with the header. Throws std::runtime_error.
  static Journal create(const std::filesystem::path& path, const JournalSettings& settings);

  // Reopens an existing journal for --resume: checks its header against `settings` (a mismatch
  // throws unless `force`), hands every kept record to `on_record`, drops a torn last line and
  // cancelled records (rewriting the file atomically), and returns the journal ready to append.
  // `stop` is asked before each line: when it says yes, the read ends with JournalReadStopped and the
  // journal is left as it was (nothing rewritten).
  static Journal open_for_resume(const std::filesystem::path& path, const JournalSettings& settings, bool force,
                                 const std::function<void(const TaskResult&)>& on_record,
                                 const std::function<bool()>& stop = {},
                                 const std::function<void(std::string_view)>& on_batch = {});

  Journal(Journal&&) noexcept;
  Journal& operator=(Journal&&) = delete;
  // Writes what is queued, makes it durable, stops the writer.
  ~Journal();

  // Queues one terminal record for the writer (records reach the file in the order queued). Blocks
  // while the queue is full. After a failed write or sync it drops the record: see failure().
  void append(TaskResult result);
  // Queues the record of a round's unread topics, as append() does.
  void append(const UnreadTopics& unread);
  // Queues a batch line (`{"batch":...}`, one line, encoded by batch_record.hpp), as append() does.
  // Its writer syncs it (sync()) before the call it announces is made.
  void append_batch_line(std::string line);
  // Waits until every queued record is written, then fdatasync.
  void sync();
  // Writes what is queued, then the end-of-run line, and syncs: the run finished. Call last.
  void mark_finished(int exit_status);
  // Why the journal stopped taking records (a write or fdatasync failed: disk full, I/O error...);
  // nullopt while it works. The run aborts on it (RunLedger::abort_reason).
  std::optional<std::string> failure() const;
  // `wake` is called once when the journal fails (on the writer's thread, with its lock held: it must
  // only wake someone), so the run's loop aborts at once, not at its next event.
  void on_failure(std::function<void()> wake);

  // Streams every record line (without its newline) to `on_record`, in file order (result lines and
  // unread-topics lines alike); a last line
  // without its newline (cut short) is not one. Call after sync(): what is still queued is not read.
  // No decoding: the lines are this journal's own whole records (see "Whole lines only").
  void for_each_record(const std::function<void(std::string_view)>& on_record) const;

  // Rewrites the journal keeping only rounds >= `from_round` (monitoring mode's --keep-rounds).
  // Writes what is queued first.
  void compact(std::uint32_t from_round);

  const std::filesystem::path& path() const;

 private:
  struct Writer;
  struct Entry;
  Journal(std::filesystem::path path, UniqueFd fd, std::string header);
  // Replaces `path` atomically with `header` and the record lines `keep` accepts (in file order).
  static void rewrite(const std::filesystem::path& path, const std::string& header,
                      const std::function<bool(std::string_view, const std::optional<TaskResult>&)>& keep);

  std::unique_ptr<Writer> w_;  // its thread holds its address: it stays put when the Journal moves
};

}  // namespace cbm
