#include "results_stream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "output_file.hpp"
#include "result_codec.hpp"

namespace cbm {

ResultsStream::ResultsStream(const std::filesystem::path& path, bool append, mode_t mode) : path_(path) {
  if (path == "-") {
    fd_ = STDOUT_FILENO;
    return;
  }
  fd_ = open_output_file("results_jsonl", path, append ? OpenAs::append : OpenAs::replace, mode).release();
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
