// ResultsStream: every terminal record as one line of JSON (--results-jsonl), written the moment it is
// final: the report's `results[i]` shape, from the one encoder (result_codec.hpp), so a consumer may
// tail the file while the run goes on.
//
// What holds: each record is written as one whole line, its '\n' included, by one write(2) on a file
// opened with O_APPEND (a reader never meets a line without its end, but for the one being written,
// which has no '\n' yet); records come in the order they became final, every round of a monitor after
// the one before. A new run truncates the file, a resumed one (--resume) appends to it. "-" writes to
// standard output (the console's progress and summary are on stderr). The file is opened as every
// file of the run is (output_file.hpp: never through a link, never a device or FIFO) with the report's
// mode (Config::output_mode, 0600 by default), whatever the umask. A write that fails stops the run (the ledger aborts
// on an observer's exception): a consumer must not silently miss records.
//
// Passive: the ledger's observers call it one at a time (record_outbox.hpp).
#pragma once

#include <sys/types.h>

#include <filesystem>

#include "run_observer.hpp"

namespace cbm {

class ResultsStream final : public RunObserver {
 public:
  // Opens `path` ("-": standard output); a new or truncated file gets `mode`. Throws PathError naming
  // it when it cannot.
  ResultsStream(const std::filesystem::path& path, bool append, mode_t mode);
  ~ResultsStream() override;
  ResultsStream(const ResultsStream&) = delete;
  ResultsStream& operator=(const ResultsStream&) = delete;

  void task_finished(const TaskResult& result) override;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool owned_ = false;  // false for standard output, which is not ours to close
};

}  // namespace cbm
