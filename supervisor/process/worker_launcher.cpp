#include "worker_launcher.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

#include "fd_passing.hpp"
#include "launcher_protocol.hpp"
#include "shm_channel.hpp"

namespace cbm {
namespace {

namespace lp = launcher_protocol;
using std::chrono::milliseconds;

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

}  // namespace

struct WorkerLauncher::Packet {
  lp::LauncherMessage message{};
  int fd = -1;  // received with the message (owned), or -1
};

WorkerLauncher::WorkerLauncher(std::filesystem::path executable, std::string api_key, Logger& log)
    : executable_(std::move(executable)), api_key_(std::move(api_key)), log_(log) {}

WorkerLauncher::~WorkerLauncher() {
  stop(milliseconds{1000});
}

WorkerLauncher::Started WorkerLauncher::spawn(const SupervisorChannel& channel, int slot) {
  if (!running() && Clock::now() >= retry_at_) start();
  if (running() && channel.name().size() < sizeof(lp::SpawnRequest::channel)) {
    if (const Started started = request(channel, slot); started.pid > 0) return started;
  }
  return Started{spawn_worker_executable(executable_, exec_worker_args(channel.name(), slot),
                                         channel.worker_socket_fd(), api_key_),
                 -1, 0};
}

ExitStatus WorkerLauncher::exit_status(pid_t pid, std::uint64_t server) {
  const auto deadline = Clock::now() + kReplyTimeout;
  for (;;) {
    if (const auto it = reports_.find({server, pid}); it != reports_.end()) {
      const ExitStatus status{it->second};
      reports_.erase(it);
      return status;
    }
    if (server != server_ || !running()) return ExitStatus{SIGKILL, true};  // it died with its server
    auto packet = next_packet(deadline, "exit report", Failure::died);
    if (packet && !file_exit_report(*packet)) {
      if (packet->fd >= 0) ::close(packet->fd);
      fail(Failure::broken, "sent an unexpected message");
    }
  }
}

void WorkerLauncher::start() {
  const auto began = Clock::now();
  ++server_;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    fail(Failure::broken, "socketpair: " + errno_text(errno));
    return;
  }
  try {
    pid_ = spawn_worker_executable(executable_, {"--launcher"}, fds[1], api_key_, /*bind_now=*/true);
  } catch (const std::system_error& e) {
    ::close(fds[0]);
    ::close(fds[1]);
    fail(Failure::broken, e.what());
    return;
  }
  ::close(fds[1]);
  socket_ = fds[0];
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0) {
    fail(Failure::broken, "pidfd_open: " + errno_text(errno));
    return;
  }
  const auto hello = next_packet(Clock::now() + kReplyTimeout, "greeting", Failure::broken);
  if (!hello) return;
  if (hello->fd >= 0) ::close(hello->fd);
  if (hello->message.kind != lp::MessageKind::hello || hello->message.value != lp::kVersion ||
      hello->message.pid != pid_) {
    fail(Failure::broken, "its greeting is not protocol version " + std::to_string(lp::kVersion) + "'s");
    return;
  }
  log_.info("worker launcher started (pid " + std::to_string(pid_) + ") in " +
            std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - began).count()) + " ms");
}

WorkerLauncher::Started WorkerLauncher::request(const SupervisorChannel& channel, int slot) {
  lp::SpawnRequest req{};
  req.version = lp::kVersion;
  req.slot = slot;
  std::memcpy(req.channel, channel.name().data(), channel.name().size());

  const ssize_t n =
      send_with_fd(socket_, &req, sizeof req, channel.worker_socket_fd(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(sizeof req)) {
    const int err = n < 0 ? errno : EMSGSIZE;
    fail(err == EPIPE || err == ECONNRESET ? Failure::died : Failure::broken,
         "cannot send it a request: " + errno_text(err));
    return {};
  }

  const auto deadline = Clock::now() + kReplyTimeout;
  for (;;) {
    auto packet = next_packet(deadline, "reply", Failure::died);
    if (!packet) return {};
    if (file_exit_report(*packet)) continue;
    const lp::LauncherMessage& m = packet->message;
    if (m.kind == lp::MessageKind::spawned && m.pid > 0 && packet->fd >= 0) {
      return {m.pid, packet->fd, server_};
    }
    if (packet->fd >= 0) ::close(packet->fd);
    if (m.kind == lp::MessageKind::spawn_failed) {
      throw std::system_error(m.value, std::generic_category(), "worker launcher: fork");
    }
    fail(Failure::broken, "sent an unexpected message");
    return {};
  }
}

std::optional<WorkerLauncher::Packet> WorkerLauncher::next_packet(Clock::time_point deadline,
                                                                  const char* awaited, Failure on_eof) {
  pollfd p{socket_, POLLIN, 0};
  for (;;) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (rc > 0) break;
    if (rc == 0) {
      fail(Failure::broken,
           std::string("no ") + awaited + " within " + std::to_string(kReplyTimeout.count()) + " ms");
      return std::nullopt;
    }
    if (errno != EINTR) {
      fail(Failure::broken, "poll: " + errno_text(errno));
      return std::nullopt;
    }
  }
  Packet packet;
  bool truncated = false;
  const ssize_t n =
      recv_with_fd(socket_, &packet.message, sizeof packet.message, MSG_DONTWAIT, packet.fd, truncated);
  const int err = n < 0 ? errno : 0;
  if (n == 0 || err == ECONNRESET) {
    fail(on_eof, std::string("ended before its ") + awaited);
    return std::nullopt;
  }
  if (n != static_cast<ssize_t>(sizeof packet.message) || truncated) {
    if (packet.fd >= 0) ::close(packet.fd);
    fail(Failure::broken, n < 0 ? "recvmsg: " + errno_text(err) : std::string("sent a malformed message"));
    return std::nullopt;
  }
  return packet;
}

bool WorkerLauncher::file_exit_report(const Packet& packet) {
  if (packet.message.kind != lp::MessageKind::exited) return false;
  if (packet.fd >= 0) ::close(packet.fd);
  reports_[{server_, packet.message.pid}] = packet.message.value;
  return true;
}

void WorkerLauncher::fail(Failure kind, const std::string& why) {
  const pid_t pid = pid_;
  const bool retry_now = kind == Failure::died;
  const auto status = stop(milliseconds::zero());
  retry_at_ = retry_now ? Clock::now() : Clock::now() + kRetryAfter;
  log_.warn("worker launcher" + (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) + ": " +
            why + (status ? " (" + status->describe() + ")" : std::string()) + "; starting workers by exec " +
            (retry_now ? "until it is restarted at the next worker start"
                       : "for " + std::to_string(kRetryAfter.count()) + " s"));
}

std::optional<ExitStatus> WorkerLauncher::stop(milliseconds grace) {
  if (socket_ >= 0) {
    ::close(socket_);  // the server exits when it reads EOF
    socket_ = -1;
  }
  if (pid_ <= 0) return std::nullopt;
  pollfd p{pidfd_, POLLIN, 0};
  if (pidfd_ < 0 || grace <= milliseconds::zero() || ::poll(&p, 1, static_cast<int>(grace.count())) <= 0) {
    if (pidfd_ >= 0) {
      ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
    } else {
      ::kill(pid_, SIGKILL);  // an unreaped child of ours: its pid cannot have been recycled
    }
  }
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, 0);
  } while (r < 0 && errno == EINTR);
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
  if (r < 0) return std::nullopt;
  return ExitStatus{raw};
}

}  // namespace cbm
