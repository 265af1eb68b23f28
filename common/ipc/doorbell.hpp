// Doorbell: a wake-up signal between two processes, one end of an AF_UNIX stream socketpair.
//
// A ring writes one byte; the other end's reader wakes from poll()/epoll and drains the pending bytes.
// The bytes carry no meaning ("something changed, look again"), so a ring that finds the socket buffer
// full is dropped: the unread bytes already in it are the wake-up. Waiting happens in the kernel, so a
// process SIGKILLed while waiting leaves nothing behind, and its death closes its end: the other end reads
// EOF. That is how the supervisor learns a worker is gone (docs/design.md, "Hazards").
#pragma once

#include <utility>

namespace cbm {

class Doorbell {
 public:
  // Both ends are created close-on-exec, so children spawned for other slots never inherit them (an
  // inherited copy would keep the socket open and hide this worker's death). Throws std::system_error.
  static std::pair<Doorbell, Doorbell> make_pair();

  Doorbell() = default;
  explicit Doorbell(int fd) : fd_(fd) {}  // adopts fd
  Doorbell(Doorbell&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Doorbell& operator=(Doorbell&& other) noexcept;
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;
  ~Doorbell() { close(); }

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  void close();

  // Signals the other end. Never blocks and never raises SIGPIPE; a peer that is gone is ignored here
  // and reported by drain()/wait().
  void ring();

  // Reads the pending bytes without blocking (at most 64 KiB: any rest keeps the fd readable).
  // Returns false once the peer is gone (EOF or reset).
  bool drain();

  // Blocks until the other end rings (or already has), then drains. Returns false once the peer is gone.
  // EINTR is retried: a signal does not end the wait.
  bool wait();

 private:
  int fd_ = -1;
};

// Clears FD_CLOEXEC on fd so that it survives exec(). Async-signal-safe: meant for the child between
// fork() and exec(). Returns false if fcntl failed.
bool clear_cloexec(int fd) noexcept;

}  // namespace cbm
