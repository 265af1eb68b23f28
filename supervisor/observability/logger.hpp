// Logger: timestamped lines to the log file (and, unless quiet, warnings and errors to stderr).
// Thread-safe. Callers never pass the API key; ApiError messages are scrubbed by the client.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

namespace cbm {

enum class LogLevel { debug, info, warning, error };

// How a duration reads in a log line or a message: "0.05 s", "2 s", "120 s".
std::string seconds_text(std::chrono::steady_clock::duration d);

class Logger {
 public:
  // An empty path logs to no file. The file is appended to, never through a link; a new one is
  // created mode 0600 (output_file.hpp). Throws PathError when it cannot be opened.
  Logger(const std::filesystem::path& path, bool echo_to_stderr);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void log(LogLevel level, std::string_view message);
  void info(std::string_view m) { log(LogLevel::info, m); }
  void warn(std::string_view m) { log(LogLevel::warning, m); }
  void error(std::string_view m) { log(LogLevel::error, m); }

 private:
  std::mutex mu_;
  std::FILE* file_ = nullptr;
  bool echo_;
};

}  // namespace cbm
