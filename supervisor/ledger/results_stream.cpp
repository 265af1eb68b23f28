#include "results_stream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "result_codec.hpp"

namespace cbm {

ResultsStream::ResultsStream(const std::filesystem::path& path, bool append) : path_(path) {
  if (path == "-") {
    fd_ = STDOUT_FILENO;
    return;
  }
  const int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (append ? 0 : O_TRUNC);
  fd_ = ::open(path.c_str(), flags, 0644);
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "--results-jsonl: cannot open '" + path.string() + "'");
  }
  owned_ = true;
}

ResultsStream::~ResultsStream() {
  if (owned_) ::close(fd_);
}

void ResultsStream::task_finished(const TaskResult& result) {
  std::string line = encode_task_result(result);
  line += '\n';
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(),
                              "--results-jsonl: cannot write to '" + path_.string() + "'");
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace cbm
