// WorkerProcess: one running concurrent_bigmodel_worker, spawned with Boost.Process and then owned by
// pid and pidfd (the supervisor's loop polls the pidfd: readable once the process has exited, so a
// death is seen at once, not on a polling tick). The child is detached from Boost.Process: we reap it
// with waitpid(pid) ourselves, never waitpid(-1).
//
// In the child, between fork and exec: the death signal is set (workers die with the supervisor, even
// on kill -9), the signal mask is cleared, the channel's socket becomes fd 3 and every other
// descriptor above 2 is marked close-on-exec.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace cbm {

class SupervisorChannel;

struct ExitStatus {
  int raw = 0;  // as from waitpid
  std::string describe() const;  // "killed by signal 9 (SIGKILL)" / "exited with status 4"
  bool killed_by(int signal) const;
};

class WorkerProcess {
 public:
  // Spawns the worker for `channel` (whose worker socket is then closed here). The key is put in the
  // child's environment as BIGMODEL_API_KEY. Throws std::system_error when the spawn fails.
  WorkerProcess(const std::filesystem::path& executable, SupervisorChannel& channel, int slot,
                const std::string& api_key);
  ~WorkerProcess();  // SIGKILLs and reaps a child still running
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }

  void signal(int sig) const;
  // Non-blocking reap; nullopt while the child runs.
  std::optional<ExitStatus> try_reap();
  // SIGKILL and reap (blocks only for the kernel to finish the kill).
  ExitStatus kill_and_reap();
  // Waits up to `timeout` for the child to exit by itself; nullopt if it did not.
  std::optional<ExitStatus> reap_within(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<ExitStatus> status_;
};

// The worker executable beside the running supervisor's own executable.
std::filesystem::path worker_executable_path();

}  // namespace cbm
