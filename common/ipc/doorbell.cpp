#include "doorbell.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace cbm {

std::pair<Doorbell, Doorbell> Doorbell::make_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::system_error(errno, std::generic_category(), "doorbell socketpair");
  }
  return {Doorbell(fds[0]), Doorbell(fds[1])};
}

Doorbell& Doorbell::operator=(Doorbell&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void Doorbell::close() {
  if (fd_ >= 0) {
    ::close(fd_);  // Linux releases the fd even when close() reports EINTR: never retry.
    fd_ = -1;
  }
}

void Doorbell::ring() {
  const char byte = 1;
  // MSG_DONTWAIT: EAGAIN means unread bytes are queued at the peer, which is already a wake-up.
  // MSG_NOSIGNAL: a dead peer gives EPIPE, not SIGPIPE; drain() reports it.
  while (::send(fd_, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

bool Doorbell::drain() {
  // Bounded, so a peer that rings without pause cannot hold the caller here: what is left keeps the fd
  // readable and is read on the next call.
  char buf[4096];
  for (int reads = 0; reads < 16;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      ++reads;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    return false;  // ECONNRESET (peer died with our bytes unread), EBADF: either way it is over.
  }
  return true;
}

bool Doorbell::wait() {
  pollfd pfd{fd_, POLLIN, 0};
  for (;;) {
    const int r = ::poll(&pfd, 1, -1);
    if (r > 0) break;
    if (r < 0 && errno != EINTR) return false;
  }
  return drain();
}

bool clear_cloexec(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == 0;
}

}  // namespace cbm
