#include "worker_process.hpp"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <csignal>
#include <cstring>
#include <system_error>

#include "doorbell.hpp"
#include "shm_channel.hpp"
#include "worker_launcher.hpp"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace bp = boost::process;

namespace cbm {
namespace {

constexpr int kWorkerChannelFd = 3;

// Runs in the child after fork, before exec: async-signal-safe calls only.
struct ChildSetup {
  int socket_fd;
  pid_t supervisor;

  template <typename Executor>
  void operator()(Executor&) const {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != supervisor) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (socket_fd == kWorkerChannelFd) {
      clear_cloexec(kWorkerChannelFd);
    } else if (::dup2(socket_fd, kWorkerChannelFd) < 0) {  // dup2 clears close-on-exec on the copy
      ::_exit(127);
    }
    // Nothing else of the supervisor's (other workers' channels, log file, shm fds) may leak into
    // the worker: a leaked channel socket would hide that worker's death.
    ::syscall(SYS_close_range, kWorkerChannelFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
  }
};

// The worker's copy of the channel socket must not stay open here, whatever happens to the spawn:
// while we hold it, the worker's death produces no EOF.
struct WorkerSocketCloser {
  SupervisorChannel& channel;
  ~WorkerSocketCloser() { channel.close_worker_socket(); }
};

}  // namespace

std::string ExitStatus::describe() const {
  if (WIFSIGNALED(raw)) {
    const int sig = WTERMSIG(raw);
    const char* name = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + (name != nullptr ? std::string(" (SIG") + name + ")" : "") +
           (with_launcher ? " with its fork server" : "");
  }
  if (WIFEXITED(raw)) return "exited with status " + std::to_string(WEXITSTATUS(raw));
  return "ended with wait status " + std::to_string(raw);
}

bool ExitStatus::killed_by(int signal) const { return WIFSIGNALED(raw) && WTERMSIG(raw) == signal; }

pid_t spawn_worker_executable(const std::filesystem::path& executable, const std::vector<std::string>& args,
                              int fd, const std::string& api_key, bool bind_now) {
  std::error_code ec;
  bp::environment env = boost::this_process::environment();
  env["BIGMODEL_API_KEY"] = api_key;
  if (bind_now) env["LD_BIND_NOW"] = "1";
  bp::child child(bp::exe = executable.string(), bp::args = args, bp::env = env,
                  bp::extend::on_exec_setup = ChildSetup{fd, ::getpid()}, ec);
  if (ec) throw std::system_error(ec, "cannot start " + executable.string());
  child.detach();  // ~child() would SIGKILL it: the caller owns the pid from here on
  return child.id();
}

std::vector<std::string> exec_worker_args(const std::string& channel_name, int slot) {
  return {"--channel", channel_name, "--fd", std::to_string(kWorkerChannelFd),
          "--slot", std::to_string(slot)};
}

WorkerProcess::WorkerProcess(WorkerLauncher& launcher, SupervisorChannel& channel, int slot) {
  WorkerSocketCloser closer{channel};
  const WorkerLauncher::Started started = launcher.spawn(channel, slot);
  if (started.server == 0) {
    adopt(started.pid);
    return;
  }
  pid_ = started.pid;
  pidfd_ = started.pidfd;
  launcher_ = &launcher;
  server_ = started.server;
}

void WorkerProcess::adopt(pid_t pid) {
  pid_ = pid;
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0) {
    const int err = errno;
    kill_and_reap();
    throw std::system_error(err, std::generic_category(), "pidfd_open");
  }
}

WorkerProcess::~WorkerProcess() {
  if (!status_) kill_and_reap();
  if (pidfd_ >= 0) ::close(pidfd_);
}

void WorkerProcess::signal(int sig) const {
  if (!status_) ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0);
}

bool WorkerProcess::exited() const {
  pollfd p{pidfd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

std::optional<ExitStatus> WorkerProcess::try_reap() {
  if (status_) return status_;
  if (launcher_ != nullptr) {
    if (exited()) status_ = launcher_->exit_status(pid_, server_);
    return status_;
  }
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = ExitStatus{raw};
  return status_;
}

ExitStatus WorkerProcess::kill_and_reap() {
  if (status_) return *status_;
  if (launcher_ != nullptr) {
    ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
    // Only a process stuck in the kernel (uninterruptible sleep) outlasts this wait; it still dies of the
    // SIGKILL when it leaves, and is reported as what it will have been.
    pollfd p{pidfd_, POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, static_cast<int>(kKillWait.count()));
    } while (rc < 0 && errno == EINTR);
    status_ = rc > 0 ? launcher_->exit_status(pid_, server_) : ExitStatus{SIGKILL};
    return *status_;
  }
  // Before adopt() has a pidfd, the child is ours and unreaped: its pid cannot have been recycled.
  if (pidfd_ >= 0) {
    ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
  } else {
    ::kill(pid_, SIGKILL);
  }
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, 0);
  } while (r < 0 && errno == EINTR);
  status_ = ExitStatus{r == pid_ ? raw : 0};
  return *status_;
}

std::optional<ExitStatus> WorkerProcess::reap_within(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  pollfd p{pidfd_, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (rc > 0) return try_reap();
    if (rc == 0) return std::nullopt;
    if (errno != EINTR) return std::nullopt;
  }
}

std::filesystem::path worker_executable_path() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "concurrent_bigmodel_worker";
  return self.parent_path() / "concurrent_bigmodel_worker";
}

}  // namespace cbm
