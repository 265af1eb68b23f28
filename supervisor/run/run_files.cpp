#include "run_files.hpp"

#include <sys/stat.h>

#include <system_error>

#include "journal.hpp"
#include "journal_lock.hpp"

namespace cbm {
namespace {

std::filesystem::path normalised(const std::filesystem::path& p) {
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(p, ec);
  if (ec) return p.lexically_normal();
  const std::filesystem::path resolved = std::filesystem::weakly_canonical(absolute, ec);
  return ec ? absolute.lexically_normal() : resolved;
}

// A journal a new run must not replace on its own.
void check_replaceable_journal(const RunConfig& config) {
  if (config.resume || config.fresh) return;
  const auto found = Journal::inspect(config.journal);
  if (!found) return;
  PathProblem p;
  p.field = "journal";
  p.path = config.journal;
  if (!found->journal) {
    p.what = "holds something other than a concurrent_bigmodel journal: not replacing it";
    p.hints = {{"fresh", "to replace it anyway"}};
    throw PathError(std::move(p));
  }
  // Nothing paid would be lost: an unfinished journal without results is replaced as a finished one.
  if (found->finished || found->results == 0) return;
  p.what = "holds " + std::to_string(found->results) +
           " results of a run that did not finish (stopped, aborted or killed)";
  p.hints = {{"resume", "to continue it"}, {"fresh", "to discard its results and start over"}};
  throw PathError(std::move(p));
}

}  // namespace

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  if (a.empty() || b.empty()) return false;
  struct stat sa {};
  struct stat sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0) {
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  }
  return normalised(a) == normalised(b);
}

std::vector<RunPath> run_paths(const RunConfig& c) {
  std::vector<RunPath> out;
  if (!c.topics_file.empty() && c.topics_file != "-") out.push_back({"topics_file", c.topics_file, false});
  if (!c.output.empty()) out.push_back({"output", c.output, true});
  if (!c.journal.empty()) {
    out.push_back({"journal", c.journal, true});
    // Its lock file is written too (the holder's pid): no other file may be it.
    out.push_back({"journal", JournalLock::lock_path(c.journal), true});
  }
  if (!c.log_file.empty()) out.push_back({"log_file", c.log_file, true});
  if (!c.results_jsonl.empty() && c.results_jsonl != "-") out.push_back({"results_jsonl", c.results_jsonl, true});
  return out;
}

std::optional<PathProblem> run_paths_problem(const std::vector<RunPath>& paths) {
  for (const auto& p : paths) {
    if (!p.written) continue;
    if (auto problem = output_target_problem(p.field, p.path)) return problem;
  }
  for (std::size_t i = 0; i < paths.size(); ++i) {
    for (std::size_t j = i + 1; j < paths.size(); ++j) {
      if (!same_file(paths[i].path, paths[j].path)) continue;
      PathProblem problem;
      problem.field = paths[i].field;
      problem.path = paths[i].path;
      problem.other_field = paths[j].field;
      problem.other_path = paths[j].path;
      return problem;
    }
  }
  return std::nullopt;
}

RunFiles::RunFiles(const RunConfig& config) {
  if (auto problem = run_paths_problem(run_paths(config))) throw PathError(std::move(*problem));
  if (config.journal.empty()) return;
  journal_lock_.emplace(config.journal);
  check_replaceable_journal(config);
}

}  // namespace cbm
