// AtomicFile: writes a whole file so that a reader sees the old content or the new, never a part:
// write a temporary beside it, fsync, rename over, fsync the directory. Content may be streamed in
// pieces (a report built from a journal never needs to fit in memory).
//
// The temporary is created O_EXCL | O_NOFOLLOW (mkostemp) and given `mode` with fchmod, whatever the
// umask. The rename never replaces anything but a regular file: a device node, FIFO, socket, directory
// or symbolic link found at the target when committing fails the commit (output_file.hpp).
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace cbm {

class AtomicFile {
 public:
  // Creates the temporary, mode `mode`. Throws std::system_error when it cannot.
  explicit AtomicFile(std::filesystem::path path, mode_t mode = 0600);
  ~AtomicFile();  // an uncommitted temporary is removed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view data);
  // Flushes, fsyncs and renames over the target. Throws std::system_error on failure.
  void commit();

 private:
  static constexpr std::size_t kBufferSize = 256 * 1024;  // a report of 20 MiB is 80 write(2)s, not 5,000

  std::filesystem::path path_;
  std::string tmp_;
  std::unique_ptr<char[]> buffer_;  // f_'s: outlives it (f_ is closed in the destructor's body)
  std::FILE* f_ = nullptr;
  bool failed_ = false;
};

// One-shot form. Returns "" on success, else what failed.
std::string write_file_atomically(const std::filesystem::path& path, std::string_view content, mode_t mode = 0600);

}  // namespace cbm
