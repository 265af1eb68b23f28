// The run's own files (report, journal, log, results stream): what is refused, and how each is opened.
//
// A file the run writes is a regular file or does not exist yet. A device node, a FIFO, a socket or a
// directory is refused, and so is a symbolic link: a link planted in a shared directory (as
// `<report>.journal.jsonl`) would otherwise turn a root run's truncation onto the link's target. Files
// are opened O_NOFOLLOW | O_CLOEXEC, created O_EXCL when new, and given their mode with fchmod, so no
// umask (000 included) widens them. docs/design.md "The run's files" has the whole policy.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "unique_fd.hpp"

namespace cbm {

// The mode a run's files get unless told otherwise (Config::output_mode widens the report and the
// results stream only).
inline constexpr mode_t kPrivateFileMode = 0600;

// What is wrong with one of the run's files, named by its concurrent_bigmodel::Config field
// ("output", "journal", "log_file", "results_jsonl", "topics_file"): the CLI names the flag
// (--log-file), the library the field.
struct PathProblem {
  std::string field;
  std::filesystem::path path;
  std::string what;  // "not a regular file (a character device)"; unused when other_field is set
  // Two settings that name one file.
  std::string other_field;
  std::filesystem::path other_path;
  // Ways out, as (field, what setting it does): rendered "pass --resume to continue it, or ...".
  std::vector<std::pair<std::string, std::string>> hints;

  // `as_flags`: "--output '/dev/sda': not a regular file (a character device)"; otherwise the
  // library's "concurrent_bigmodel::Config: output '/dev/sda': ...".
  std::string text(bool as_flags) const;
};

// A run's file refused before anything was sent (exit 2 for the CLI, which prints problem().text(true)).
class PathError : public std::invalid_argument {
 public:
  explicit PathError(PathProblem problem);
  const PathProblem& problem() const { return problem_; }

 private:
  PathProblem problem_;
};

// "a character device", "a FIFO", ... for a st_mode that is not a regular file.
std::string file_kind(mode_t mode);

// Why `path` cannot be one of the run's files as it stands (it exists and is not a regular file, or
// is a symbolic link); nullopt when it is a regular file or does not exist.
std::optional<PathProblem> output_target_problem(const std::string& field, const std::filesystem::path& path);

enum class OpenAs {
  append,   // keep what the file holds (the log, a resumed results stream)
  replace,  // start it empty (a new journal, a new results stream)
};

// Opens `path` for writing (O_WRONLY | O_APPEND), never through a link and never anything but a
// regular file: created O_EXCL with `mode` when new; an existing file opened `replace` is truncated
// and given `mode`, one opened `append` keeps its own. Throws PathError naming `field`.
UniqueFd open_output_file(const std::string& field, const std::filesystem::path& path, OpenAs how, mode_t mode);

}  // namespace cbm
