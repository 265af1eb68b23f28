#include "output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cbm {
namespace {

std::string name_of(const std::string& field, bool as_flags) {
  if (!as_flags) return field;
  std::string flag = "--";
  for (const char c : field) flag += c == '_' ? '-' : c;
  return flag;
}

std::string quoted(const std::filesystem::path& p) {
  std::string out = "'";
  out += p.string();
  out += "'";
  return out;
}

PathProblem problem(const std::string& field, const std::filesystem::path& path, std::string what) {
  PathProblem p;
  p.field = field;
  p.path = path;
  p.what = std::move(what);
  return p;
}

std::string not_regular(mode_t mode) {
  if (S_ISLNK(mode)) {
    return "a symbolic link: refused (the run never writes through a link; name the file itself; "
           "--results-jsonl - streams the results to standard output)";
  }
  return "not a regular file (" + file_kind(mode) +
         "); the run's files must be regular files (--results-jsonl - streams the results to standard output)";
}

}  // namespace

std::string PathProblem::text(bool as_flags) const {
  std::string out = as_flags ? std::string() : std::string("concurrent_bigmodel::Config: ");
  out += name_of(field, as_flags);
  out += " ";
  out += quoted(path);
  if (!other_field.empty()) {
    out += " and ";
    out += name_of(other_field, as_flags);
    out += " ";
    out += quoted(other_path);
    out += " are the same file: each needs a file of its own";
  } else {
    out += ": ";
    out += what;
  }
  for (std::size_t i = 0; i < hints.size(); ++i) {
    out += i == 0 ? "; pass " : ", or ";
    out += as_flags ? name_of(hints[i].first, true) : "Config::" + hints[i].first;
    out += " ";
    out += hints[i].second;
  }
  return out;
}

PathError::PathError(PathProblem problem) : std::invalid_argument(problem.text(false)), problem_(std::move(problem)) {}

std::string file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a file";
}

std::optional<PathProblem> output_target_problem(const std::string& field, const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;  // absent (or unreachable: the open says why)
  if (S_ISREG(st.st_mode)) return std::nullopt;
  return problem(field, path, not_regular(st.st_mode));
}

UniqueFd open_output_file(const std::string& field, const std::filesystem::path& path, OpenAs how, mode_t mode) {
  if (auto p = output_target_problem(field, path)) throw PathError(std::move(*p));
  // O_NOFOLLOW: a link planted after the check above is refused too (ELOOP). O_NONBLOCK: a FIFO put
  // there meanwhile fails to open (ENXIO) instead of blocking until some reader comes; fstat below
  // refuses whatever else it is.
  const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  UniqueFd fd(::open(path.c_str(), flags | O_CREAT | O_EXCL, mode));
  const bool created = fd.get() >= 0;
  if (!created && errno == EEXIST) fd.reset(::open(path.c_str(), flags));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ELOOP) throw PathError(problem(field, path, not_regular(S_IFLNK)));
    throw PathError(problem(field, path, std::string("cannot open: ") + std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw PathError(problem(field, path, std::string("cannot stat: ") + std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) throw PathError(problem(field, path, not_regular(st.st_mode)));
  if (!created) {
    // A file found there may have been planted: another name of a file elsewhere (a hard link: writing
    // it writes that file), or, for a run as root, another user's file (as fs.protected_regular
    // refuses an O_CREAT open of it in a sticky directory, which this second open is not).
    if (st.st_nlink != 1) {
      throw PathError(problem(field, path, "has " + std::to_string(st.st_nlink) +
                                               " hard links: refused (writing it would write the other names)"));
    }
    if (::geteuid() == 0 && st.st_uid != 0) {
      throw PathError(problem(field, path, "belongs to user " + std::to_string(st.st_uid) +
                                               ": a run as root does not write another user's file"));
    }
  }
  const int status = ::fcntl(fd.get(), F_GETFL);
  if (status < 0 || ::fcntl(fd.get(), F_SETFL, status & ~O_NONBLOCK) != 0 ||
      (how == OpenAs::replace && !created && ::ftruncate(fd.get(), 0) != 0) ||
      ((created || how == OpenAs::replace) && ::fchmod(fd.get(), mode) != 0)) {
    throw PathError(problem(field, path, std::string("cannot prepare: ") + std::strerror(errno)));
  }
  return fd;
}

}  // namespace cbm
