// RunFiles: the checks a run makes on its files before it opens any, and the journal's lock, held for
// the run's life. RunParts builds it first (run_driver.hpp), so the batch run, the library and `serve`
// all pass through it; the library's Config check (public_config.cpp) runs the same path check early.
//
// The rules (docs/design.md "The run's files"):
// - every file the run writes (report, journal, log, results stream) is a regular file or absent:
//   never a device node, FIFO, socket, directory or symbolic link (output_file.hpp);
// - the input (topics file), report, journal, log and results stream are five different files, by
//   identity (st_dev, st_ino) when both exist, else by their normalised absolute paths, so
//   `dir/../x.json`, `./x.json` and a hard link of x.json all count as x.json;
// - one run at a time per journal (journal_lock.hpp);
// - a journal whose run did not finish (no end-of-run line, journal.hpp) and holds results is not
//   replaced by a new run unless `fresh`: --resume continues it, --fresh discards it. A file at the
//   journal's path that is not a journal is not replaced without `fresh` either.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "journal_lock.hpp"
#include "output_file.hpp"
#include "run_config.hpp"

namespace cbm {

// True when `a` and `b` name one file: by identity (device and inode) when both exist, else by their
// normalised absolute paths (symbolic links in what exists of them resolved). Empty paths name nothing.
bool same_file(const std::filesystem::path& a, const std::filesystem::path& b);

// One of the run's files, named by its Config field.
struct RunPath {
  std::string field;  // "topics_file", "output", "journal", "log_file", "results_jsonl"
  std::filesystem::path path;
  bool written = true;  // false for the input
};

// The files `config` names (the empty ones and results_jsonl "-" left out), input first.
std::vector<RunPath> run_paths(const RunConfig& config);

// The first problem among `paths`: a written file that is not a regular file (or a link), else two
// that are one file; nullopt when none.
std::optional<PathProblem> run_paths_problem(const std::vector<RunPath>& paths);

class RunFiles {
 public:
  // Checks the paths, takes the journal's lock and checks what an existing journal holds. Throws
  // PathError (exit 2 for the CLI) on the first problem.
  explicit RunFiles(const RunConfig& config);

 private:
  std::optional<JournalLock> journal_lock_;
};

}  // namespace cbm
