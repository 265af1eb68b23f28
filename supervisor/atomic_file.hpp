// AtomicFile: writes a whole file so that a reader sees the old content or the new, never a part:
// write a temporary beside it, fsync, rename over, fsync the directory. Content may be streamed in
// pieces (a report built from a journal never needs to fit in memory).
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace cbm {

class AtomicFile {
 public:
  // Creates the temporary. Throws std::system_error when it cannot.
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();  // an uncommitted temporary is removed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view data);
  // Flushes, fsyncs and renames over the target. Throws std::system_error on failure.
  void commit();

 private:
  std::filesystem::path path_;
  std::string tmp_;
  std::FILE* f_ = nullptr;
  bool failed_ = false;
};

// One-shot form. Returns "" on success, else what failed.
std::string write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace cbm
