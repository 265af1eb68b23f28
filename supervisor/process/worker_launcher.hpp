// WorkerLauncher: starts worker processes by fork() from a fork server ("zygote", as Android and Chrome
// do) instead of fork + exec. An exec'd worker spends ~10 ms of CPU in the dynamic loader (libcurl's
// dozens of libraries) before it does anything; the server, `concurrent_bigmodel_worker --launcher`,
// pays that once and forks ready workers.
//
// Who calls what
//   The WorkerPool owns one and hands it to WorkerProcess for every worker start; WorkerProcess
//   asks it for the exit status of the workers it forked. Everything runs on the supervisor's loop
//   thread; every wait on the server is bounded by kReplyTimeout. The server starts with the first spawn().
//
// Process shape
//   The server is our child, started with Boost.Process and the workers' child setup (death signal,
//   clean signal mask, its control socket as fd 3, nothing else inherited; the API key in its
//   environment, with LD_BIND_NOW=1: the server resolves every library symbol once, at its load, and
//   its workers inherit them resolved instead of each resolving them, and copying the pages, again).
//   The workers are the server's children: each dies with the server (PR_SET_PDEATHSIG),
//   the server dies with us, so none outlives us, even after kill -9. We watch a worker through the
//   pidfd the server sends with its pid (readable when the worker exits) and learn its exit status from
//   the server's report (launcher_protocol.hpp), which follows the exit by microseconds.
//
// Failure
//   A server that is gone (EOF), breaks the protocol or stays silent past kReplyTimeout is killed and
//   reaped; its workers die with it and are reported "killed by signal 9" (the loop treats them as any
//   crash). The worker being started is then exec'd directly, as the next ones are until a new server
//   starts: at the next spawn() after the death of a server that had started, kRetryAfter later after any
//   other failure (a server that cannot start, say an old worker binary, must not cost every worker
//   start an extra exec or a timeout). Each such event is logged once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "logger.hpp"
#include "worker_process.hpp"

namespace cbm {

class SupervisorChannel;

class WorkerLauncher {
 public:
  static constexpr std::chrono::milliseconds kReplyTimeout{2000};
  static constexpr std::chrono::seconds kRetryAfter{30};

  struct Started {
    pid_t pid = -1;
    int pidfd = -1;            // owned by the caller; -1 when exec'd (a child of ours: open it yourself)
    std::uint64_t server = 0;  // the server that forked it; 0 when exec'd
  };

  // Starts nothing yet. `executable` is the worker binary; `api_key` reaches the server (and so every
  // worker) through its environment as BIGMODEL_API_KEY, never through argv.
  WorkerLauncher(std::filesystem::path executable, std::string api_key, Logger& log);
  // Closes the server's socket (it exits on EOF, and workers still running die with it), then reaps it,
  // SIGKILLed if it lingers. Stop the workers first to have their exit statuses.
  ~WorkerLauncher();
  WorkerLauncher(const WorkerLauncher&) = delete;
  WorkerLauncher& operator=(const WorkerLauncher&) = delete;

  // Starts the worker for `channel` (its name and worker socket; the caller closes its own copy of the
  // socket afterwards), for `slot`, with the socket as its fd 3. Throws std::system_error when it
  // could not be started.
  Started spawn(const SupervisorChannel& channel, int slot);

  // The exit status of worker `pid` forked by `server`. Precondition: it has exited (its pidfd is
  // readable). Waits up to kReplyTimeout for the server's report; a worker whose server is gone without
  // reporting it died with it: "killed by signal 9".
  ExitStatus exit_status(pid_t pid, std::uint64_t server);

 private:
  using Clock = std::chrono::steady_clock;
  // `died`: EOF from a server that had greeted us; any other failure is `broken`.
  enum class Failure { died, broken };
  struct Packet;

  bool running() const { return socket_ >= 0; }
  // Starts a server; running() tells whether it worked.
  void start();
  // Has the server fork the worker; pid -1 after a failure of the server.
  Started request(const SupervisorChannel& channel, int slot);
  // The next message from the server, waiting until `deadline` for it. nullopt after a failure
  // (logged; the server is then stopped).
  std::optional<Packet> next_packet(Clock::time_point deadline, const char* awaited, Failure on_eof);
  bool file_exit_report(const Packet& packet);  // false if it is not one
  void fail(Failure kind, const std::string& why);
  std::optional<ExitStatus> stop(std::chrono::milliseconds grace);

  const std::filesystem::path executable_;
  const std::string api_key_;
  Logger& log_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int socket_ = -1;             // our end of the control socketpair, while the server runs
  std::uint64_t server_ = 0;    // number of the current (or last) server; 1 for the first
  Clock::time_point retry_at_;  // no new server before this
  std::map<std::pair<std::uint64_t, pid_t>, int> reports_;  // (server, pid) -> wait status, not yet claimed
};

}  // namespace cbm
