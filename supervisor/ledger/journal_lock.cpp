#include "journal_lock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "output_file.hpp"

namespace cbm {
namespace {

// The pid a holder wrote in its lock file; 0 when none (yet). Read through a descriptor of its own
// (ours is write-only); closing it does not touch an OFD lock.
long holder_pid(const std::filesystem::path& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return 0;
  char buf[32] = {};
  const ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  char* end = nullptr;
  const long pid = std::strtol(buf, &end, 10);
  return end != buf && *end == '\n' ? pid : 0;
}

PathProblem lock_problem(const std::filesystem::path& journal, std::string what) {
  PathProblem p;
  p.field = "journal";
  p.path = journal;
  p.what = std::move(what);
  return p;
}

}  // namespace

std::filesystem::path JournalLock::lock_path(const std::filesystem::path& journal) {
  std::filesystem::path p = journal;
  p += ".lock";
  return p;
}

JournalLock::JournalLock(const std::filesystem::path& journal) {
  const std::filesystem::path path = lock_path(journal);
  // Opened as the run's other files are (never through a link, a regular file, 0600). O_APPEND: the
  // pid is written after a truncation, so at offset 0 all the same.
  fd_ = open_output_file("journal", path, OpenAs::append, kPrivateFileMode);
  struct flock whole {};
  whole.l_type = F_WRLCK;
  whole.l_whence = SEEK_SET;
  if (::fcntl(fd_.get(), F_OFD_SETLK, &whole) == 0) {
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_.get(), 0) != 0 || ::write(fd_.get(), pid.data(), pid.size()) != static_cast<ssize_t>(pid.size())) {
      throw PathError(lock_problem(journal, "cannot write its lock file '" + path.string() + "': " + std::strerror(errno)));
    }
    return;
  }
  if (errno != EAGAIN && errno != EACCES) {
    throw PathError(lock_problem(journal, "cannot lock '" + path.string() + "': " + std::strerror(errno)));
  }
  // Held. The holder writes its pid just after it locks: give it a moment (at most 200 ms).
  long pid = holder_pid(path);
  for (int i = 0; pid == 0 && i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    pid = holder_pid(path);
  }
  std::string who = pid == 0 ? std::string("pid unknown") : "pid " + std::to_string(pid);
  if (pid == ::getpid()) who += ", this process";
  throw PathError(lock_problem(journal, "in use by another run (" + who + "; lock file '" + path.string() +
                                            "'): one run at a time per journal"));
}

JournalLock::~JournalLock() {
  // Emptied while still locked: a pid left behind would name a process that no longer holds it. A
  // failure changes nothing: the lock goes with the descriptor all the same.
  if (fd_.get() >= 0 && ::ftruncate(fd_.get(), 0) != 0) return;
}

}  // namespace cbm
