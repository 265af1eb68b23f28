// Test support: a child process started with posix_spawn, its stdout and stderr captured in files.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cbm::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::string read_text(const std::filesystem::path& p);
void write_text(const std::filesystem::path& p, const std::string& text);

struct SpawnOptions {
  std::map<std::string, std::string> env;      // added to (or replacing in) the inherited environment
  std::vector<std::string> unset_env;
  std::filesystem::path cwd;                   // empty: inherit
  std::filesystem::path output_dir;            // where stdout.txt / stderr.txt go (required)
  std::optional<std::filesystem::path> stdin_file;
};

class Subprocess {
 public:
  Subprocess(const std::vector<std::string>& argv, SpawnOptions options);
  ~Subprocess();  // SIGKILLs and reaps the child if still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // The raw wait status once the child exited within `timeout`; nullopt if it still runs.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  // Exit code (or 128+signal) after waiting; fails the test (throws) when it does not end in time.
  int exit_code(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
  std::filesystem::path out_;
  std::filesystem::path err_;
};

// Pids of live processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent);
// Whether a process exists (and is not a zombie).
bool process_alive(pid_t pid);
// Files in /dev/shm whose name starts with `prefix`.
std::vector<std::string> shm_segments(const std::string& prefix);

}  // namespace cbm::test
