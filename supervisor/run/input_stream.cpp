#include "input_stream.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace cbm {

struct InputStream::State {
  int fd = -1;
  bool regular = false;
  bool watch_stop = true;
  bool stopped = false;
  bool seen_data = false;
  StopCheck stop;

  bool stop_now() {
    if (!watch_stop || !stop || !stop()) return false;
    stopped = true;
    return true;
  }
};

namespace {

ssize_t read_input(void* cookie, char* buf, std::size_t size) {
  auto& s = *static_cast<InputStream::State*>(cookie);
  size = std::min(size, kReadChunk);
  for (;;) {
    if (s.stop_now()) return 0;
    bool ready = true;
    if (!s.regular) {
      pollfd p{s.fd, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(kStopPollInterval.count()));
      if (n < 0 && errno != EINTR) return -1;
      ready = n > 0;
      // Until data came, a FIFO's read says 0 while no writer has come yet: only poll() tells the
      // end then. After data, read anyway: a writer that opened before the reader and left raises no
      // POLLHUP (Linux), and a non-blocking read's 0 is the end.
      if (!ready && !s.seen_data) continue;
    }
    const ssize_t n = ::read(s.fd, buf, size);
    if (n > 0) s.seen_data = true;
    if (n >= 0) return n;
    if (errno == EINTR || errno == EAGAIN) continue;
    return -1;
  }
}

int seek_input(void* cookie, off64_t* offset, int whence) {
  auto& s = *static_cast<InputStream::State*>(cookie);
  const off_t at = ::lseek(s.fd, static_cast<off_t>(*offset), whence);
  if (at < 0) return -1;
  *offset = at;
  return 0;
}

int close_input(void* cookie) {
  auto& s = *static_cast<InputStream::State*>(cookie);
  const int fd = std::exchange(s.fd, -1);
  return fd >= 0 ? ::close(fd) : 0;
}

}  // namespace

InputStream::InputStream(const std::string& path, StopCheck stop) : path_(path), state_(std::make_unique<State>()) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error("cannot open '" + path + "': " + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw std::invalid_argument("'" + path + "' is a directory, not a topics file");
  }
  regular_ = S_ISREG(st.st_mode);
  if (regular_) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  state_->fd = fd;
  state_->regular = regular_;
  state_->stop = std::move(stop);
  cookie_io_functions_t io{read_input, nullptr, regular_ ? seek_input : nullptr, close_input};
  file_ = ::fopencookie(state_.get(), "r", io);
  if (file_ == nullptr) {
    ::close(fd);
    throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
  }
  std::setvbuf(file_, nullptr, _IOFBF, kReadChunk);
}

InputStream::~InputStream() {
  if (file_ != nullptr) std::fclose(file_);
}

bool InputStream::stopped() const { return state_->stopped; }

void InputStream::rewind() {
  if (!regular_) throw std::logic_error("'" + path_ + "' is not a regular file: it cannot be read twice");
  state_->watch_stop = false;
  state_->stopped = false;
  if (std::fseek(file_, 0, SEEK_SET) != 0) {
    throw std::runtime_error("cannot reread '" + path_ + "': " + std::strerror(errno));
  }
  std::clearerr(file_);
}

std::string input_path_problem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "cannot open '" + path + "': " + std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return "'" + path + "' is a directory, not a topics file";
  if (::access(path.c_str(), R_OK) != 0) return "cannot open '" + path + "': " + std::strerror(errno);
  return {};
}

}  // namespace cbm
