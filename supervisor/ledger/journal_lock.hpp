// JournalLock: one run at a time per journal, in any process (another Executor of this one included).
//
// The lock is an open-file-description lock (fcntl F_OFD_SETLK, a write lock on the whole file) on a
// lock file beside the journal, `<journal>.lock`, which holds the holder's pid. Why each part:
// - A lock file, not the journal itself: --resume and --keep-rounds replace the journal by a rename
//   (atomic_file.hpp), which would leave a lock on the old inode and none on the new.
// - OFD, not a classic POSIX fcntl lock: those belong to the process, so a second Executor in the same
//   process would be granted the lock again, and closing any descriptor of the file would drop it.
//   OFD locks conflict between descriptions even in one process, and go only when the last
//   descriptor of the description closes (a kill -9 included: no stale lock).
// - The pid written in the file: F_OFD_GETLK reports l_pid = -1, so the holder says who it is. The
//   loser reads it; a holder that has locked but not yet written its pid is waited for briefly.
// - O_CLOEXEC: a forked child keeping the descriptor would keep the lock. Workers are started by
//   fork + exec, and the child closes every descriptor above its channel (worker_process.cpp); the
//   fork server is a program of its own, exec'd the same way.
// The lock file stays after the run (emptied): removing it would let a run that opened it just before
// lock an inode nobody else can find.
#pragma once

#include <filesystem>

#include "unique_fd.hpp"

namespace cbm {

class JournalLock {
 public:
  // Takes the lock of `journal`. Throws PathError (field "journal") naming the holder's pid when
  // another run holds it, or when the lock file cannot be made.
  explicit JournalLock(const std::filesystem::path& journal);
  ~JournalLock();
  JournalLock(JournalLock&&) noexcept = default;
  JournalLock& operator=(JournalLock&&) = delete;

  static std::filesystem::path lock_path(const std::filesystem::path& journal);

 private:
  UniqueFd fd_;
};

}  // namespace cbm
