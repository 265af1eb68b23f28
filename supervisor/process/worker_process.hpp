// WorkerProcess: one running concurrent_bigmodel_worker, owned by pid and pidfd (the supervisor's loop
// polls the pidfd: readable once the process has exited, so a death is seen at once, not on a polling
// tick). Signals go through the pidfd, so they can never hit a recycled pid.
//
// It is started in one of two ways:
//   - forked by the WorkerLauncher's fork server (fast; see worker_launcher.hpp). It is the server's
//     child: the server reaps it and reports its exit status, which try_reap() and friends fetch from
//     the launcher (the launcher must outlive this object).
//   - exec'd with Boost.Process (the baseline, and the launcher's fallback). It is our child, detached
//     from Boost.Process: we reap it with waitpid(pid) ourselves, never waitpid(-1). In the child, between
//     fork and exec: the death signal is set (workers die with the supervisor, even on kill -9), the
//     signal mask is cleared, the given socket becomes fd 3 and every other descriptor above 2 is
//     marked close-on-exec.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cbm {

class SupervisorChannel;
class WorkerLauncher;

struct ExitStatus {
  int raw = 0;  // as from waitpid
  // Died because its fork server died (PR_SET_PDEATHSIG), not by anything of its own.
  bool with_launcher = false;
  std::string describe() const;  // "killed by signal 9 (SIGKILL)" / "exited with status 4"
  bool killed_by(int signal) const;
};

class WorkerProcess {
 public:
  // Has `launcher` start the worker for `channel` (whose worker socket is then closed here): forked by
  // its fork server, or exec'd when that is unavailable. Throws std::system_error on failure.
  WorkerProcess(WorkerLauncher& launcher, SupervisorChannel& channel, int slot);
  ~WorkerProcess();  // SIGKILLs and reaps a child still running
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }

  void signal(int sig) const;
  // Non-blocking reap; nullopt while the child runs.
  std::optional<ExitStatus> try_reap();
  // SIGKILL and reap (blocks only for the kernel to finish the kill, at most kKillWait for a forked one).
  ExitStatus kill_and_reap();
  // Waits up to `timeout` for the child to exit by itself; nullopt if it did not.
  std::optional<ExitStatus> reap_within(std::chrono::milliseconds timeout);

 private:
  static constexpr std::chrono::milliseconds kKillWait{2000};

  void adopt(pid_t pid);  // takes ownership of an exec'd child; SIGKILLs and reaps it if that fails
  bool exited() const;    // the pidfd is readable

  pid_t pid_ = -1;
  int pidfd_ = -1;
  WorkerLauncher* launcher_ = nullptr;  // the fork server's owner, for a forked worker
  std::uint64_t server_ = 0;            // the fork server that forked it
  std::optional<ExitStatus> status_;
};

// Starts `executable args...` as a detached child of this process with the child setup described above,
// `fd` as its fd 3 and BIGMODEL_API_KEY=`api_key` added to its environment. Returns its pid; the caller
// reaps it. Throws std::system_error when the spawn fails.
// `bind_now`: the dynamic loader resolves every symbol of every library at start (LD_BIND_NOW) instead
// of at each function's first call: for the fork server, whose workers would otherwise each resolve
// (and copy the pages of) the same symbols again.
pid_t spawn_worker_executable(const std::filesystem::path& executable, const std::vector<std::string>& args,
                              int fd, const std::string& api_key, bool bind_now = false);

// The command line of a worker started by exec for `channel_name`'s socket as fd 3.
std::vector<std::string> exec_worker_args(const std::string& channel_name, int slot);

// The worker executable beside the running supervisor's own executable.
std::filesystem::path worker_executable_path();

}  // namespace cbm
