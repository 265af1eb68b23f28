#include "logger.hpp"

#include <cerrno>
#include <system_error>

#include "output_file.hpp"
#include "result_codec.hpp"

namespace cbm {
namespace {

std::string_view level_name(LogLevel l) {
  switch (l) {
    case LogLevel::debug:
      return "DEBUG";
    case LogLevel::info:
      return "INFO";
    case LogLevel::warning:
      return "WARN";
    case LogLevel::error:
      return "ERROR";
  }
  return "?";
}

}  // namespace

Logger::Logger(const std::filesystem::path& path, bool echo_to_stderr) : echo_(echo_to_stderr) {
  if (path.empty()) return;
  UniqueFd fd = open_output_file("log_file", path, OpenAs::append, kPrivateFileMode);
  file_ = ::fdopen(fd.get(), "a");
  if (file_ == nullptr) throw std::system_error(errno, std::generic_category(), "cannot open log file " + path.string());
  fd.release();
}

Logger::~Logger() {
  if (file_ != nullptr) std::fclose(file_);
}

void Logger::log(LogLevel level, std::string_view message) {
  const std::string stamp = iso8601(WallClock::now());
  std::lock_guard lock(mu_);
  if (file_ != nullptr) {
    std::fprintf(file_, "%s %s %.*s\n", stamp.c_str(), level_name(level).data(), static_cast<int>(message.size()),
                 message.data());
    std::fflush(file_);
  }
  if (echo_ && level >= LogLevel::warning) {
    std::fprintf(stderr, "concurrent_bigmodel: %.*s\n", static_cast<int>(message.size()), message.data());
  }
}

std::string seconds_text(std::chrono::steady_clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace cbm
