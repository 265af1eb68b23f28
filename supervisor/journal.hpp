// Journal: every terminal result, appended as one JSON line the moment it is known (JSONL).
//
// Line 1 is a header with the settings that change results (models, prompts, search); every other
// line is a report entry (the `results[i]` object, which carries its round and id).
//
// Durability policy: each record is written with one write(2) to an O_APPEND file, so a kill -9 of the
// supervisor loses nothing already recorded (the page cache survives the process). fdatasync runs at
// most once a second, at each round's end and at exit: a power cut loses at most about a second of
// results, which --resume then runs again.
//
// A crash can leave a torn last line; open_for_resume() drops it (and cancelled records, which are to
// be run again) by rewriting the journal atomically before appending to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "run_config.hpp"
#include "task.hpp"

namespace cbm {

// The settings that change results, as the header stores them, and their fingerprint.
struct JournalSettings {
  std::string chat_model;
  std::string tool_model;
  bool search = true;
  std::string prompts_digest;  // FNV-1a 64 of the four templates, hex

  static JournalSettings of(const RunConfig& config);
  bool operator==(const JournalSettings&) const = default;
  std::string describe() const;
};

class Journal {
 public:
  // Starts a new journal (truncating any old one) with the header. Throws std::runtime_error.
  static Journal create(const std::filesystem::path& path, const JournalSettings& settings);

  // Reopens an existing journal for --resume: checks its header against `settings` (a mismatch
  // throws unless `force`), hands every kept record to `on_record`, drops a torn last line and
  // cancelled records (rewriting the file atomically), and returns the journal ready to append.
  static Journal open_for_resume(const std::filesystem::path& path, const JournalSettings& settings, bool force,
                                 const std::function<void(const TaskResult&)>& on_record);

  Journal(Journal&&) noexcept;
  Journal& operator=(Journal&&) = delete;
  ~Journal();

  // Appends one terminal record. Throws std::system_error on a write failure (disk full...).
  void append(const TaskResult& result);
  void sync();  // fdatasync now

  // Streams the line of every record of round >= `from_round` (nullopt = all) to `on_line`, in file
  // order: each one a whole JSON object (a line that is not, such as one cut short by a failed write,
  // is skipped). All rounds need no decoding, only a check that the line is well-formed JSON.
  void for_each_line(std::optional<std::uint32_t> from_round,
                     const std::function<void(const std::string&)>& on_line) const;

  // Rewrites the journal keeping only rounds >= `from_round` (monitoring mode's --keep-rounds).
  void compact(std::uint32_t from_round);

  const std::filesystem::path& path() const { return path_; }

 private:
  Journal(std::filesystem::path path, int fd, std::string header);
  // Replaces `path` atomically with `header` and the record lines `keep` accepts (in file order).
  static void rewrite(const std::filesystem::path& path, const std::string& header,
                      const std::function<bool(const std::string&, const std::optional<TaskResult>&)>& keep);

  std::filesystem::path path_;
  int fd_;
  std::string header_;
  std::chrono::steady_clock::time_point last_sync_;
};

}  // namespace cbm
