// concurrent_bigmodel_worker: a dumb, restartable loop (s6/runit style). It receives its config, then
// tasks, over the shared-memory channel its supervisor created, runs a pipeline attempt per task (up to
// the config's `attempts` at once, on one event loop) and sends each outcome back. All judgement
// (retries, timeouts, restarts, who is to blame for a crash) lives in the supervisor.
//
// Usage (by the supervisor only):
//   concurrent_bigmodel_worker --channel NAME --fd N --slot S   one worker, started by exec
//   concurrent_bigmodel_worker --launcher                        a fork server ("zygote") for workers
// The API key comes from BIGMODEL_API_KEY in the environment.
//
// Launcher mode: exec costs a worker ~10 ms of CPU in the dynamic loader (libcurl's libraries); fork()
// of a process that has them loaded and libcurl initialised costs a fraction of it. The launcher is
// single-threaded, so fork() is safe (see run_launcher). It serves requests from its control socket
// (fd 3; common/ipc/launcher_protocol.hpp): fork a worker, reply with its pid and a pidfd; and it
// reaps its workers and reports each exit status. A worker dies with the launcher (PR_SET_PDEATHSIG),
// the launcher with the supervisor: none outlives the supervisor, even after kill -9.
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fd_passing.hpp"
#include "launcher_protocol.hpp"
#include "attempt_loop.hpp"
#include "bigmodel_client.hpp"
#include "pipeline.hpp"
#include "result_codec.hpp"
#include "shm_channel.hpp"
#include "worker_config.hpp"

namespace {

namespace lp = cbm::launcher_protocol;

constexpr int kExitBadUsage = 2;
constexpr int kExitChannel = 4;
constexpr int kWorkerChannelFd = 3;

struct Args {
  std::string channel;
  int fd = -1;
  int slot = -1;
};

std::optional<Args> parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--channel") {
      a.channel = value;
    } else if (flag == "--fd") {
      a.fd = std::atoi(value);
    } else if (flag == "--slot") {
      a.slot = std::atoi(value);
    } else {
      return std::nullopt;
    }
  }
  if (a.channel.empty() || a.fd < 0 || a.slot < 0 || argc % 2 == 0) return std::nullopt;
  return a;
}

// One attempt at a time (the default: a worker per slot), blocking in libcurl: the smallest worker,
// which the supervisor stops with a signal when its attempt times out.
int serve_one_at_a_time(cbm::WorkerChannel& channel, const cbm::WorkerConfig& config) {
  cbm::CurlGlobal curl;
  cbm::BigModelClient client(config.client);
  cbm::Pipeline pipeline(config.pipeline, client);
  while (auto message = channel.receive()) {
    auto task = cbm::decode_task(*message);
    if (!task) {
      std::fprintf(stderr, "concurrent_bigmodel_worker: %s\n", task.error().message.c_str());
      return kExitChannel;
    }
    const auto outcome = pipeline.run(task.value(), cbm::Clock::now() + config.attempt_timeout);
    if (channel.send(cbm::encode_outcome(task->id, task->attempt, outcome, config.trace)) != cbm::SendResult::kAccepted) {
      return kExitChannel;
    }
  }
  // The supervisor closed the channel (or is gone): a normal end.
  return channel.status() == cbm::ChannelStatus::kPeerGone ? 0 : kExitChannel;
}

// Several attempts at once (--workers): on one event loop (the asyncio mode's AttemptLoop), which
// also watches the channel's doorbell. The supervisor sends a task to run or the cancel of a running
// attempt; each attempt's outcome goes back once, a cancelled one's included.
int serve_on_a_loop(cbm::WorkerChannel& channel, const cbm::WorkerConfig& config) {
  cbm::CurlGlobal curl;
  const auto slots = static_cast<std::size_t>(config.attempts);
  cbm::AttemptLoop loop(config.client, config.pipeline, slots, channel.fd());
  struct Running {
    std::uint64_t task_id;
    int attempt;
  };
  std::vector<std::optional<Running>> running(slots);
  std::vector<cbm::AttemptLoop::Ended> ended;
  for (;;) {
    while (auto message = channel.try_receive()) {
      auto command = cbm::decode_worker_command(*message);
      if (!command) {
        std::fprintf(stderr, "concurrent_bigmodel_worker: %s\n", command.error().message.c_str());
        return kExitChannel;
      }
      const cbm::Task& task = command->task;
      // A cancel's attempt, or a free slot for a task.
      const auto wanted = [&](const std::optional<Running>& r) {
        return command->cancel ? r && r->task_id == task.id && r->attempt == task.attempt : !r;
      };
      const auto slot = static_cast<std::size_t>(std::find_if(running.begin(), running.end(), wanted) - running.begin());
      // A cancel that crossed its attempt's outcome on the way finds nothing: that outcome answers it.
      if (command->cancel) {
        if (slot < slots) loop.cancel(slot);
        continue;
      }
      if (slot == slots) {
        std::fprintf(stderr, "concurrent_bigmodel_worker: more tasks than its %zu attempts\n", slots);
        return kExitChannel;
      }
      running[slot] = Running{task.id, task.attempt};
      loop.start(slot, task, cbm::Clock::now() + config.attempt_timeout);
    }
    // The supervisor closed the channel (or is gone): a normal end.
    if (channel.status() != cbm::ChannelStatus::kOpen) {
      return channel.status() == cbm::ChannelStatus::kPeerGone ? 0 : kExitChannel;
    }
    loop.wait(std::chrono::hours(1));  // a transfer, a timer or the doorbell ends it
    loop.take_ended(ended);
    for (auto& e : ended) {
      const Running r = *std::exchange(running[e.slot], std::nullopt);
      if (channel.send(cbm::encode_outcome(r.task_id, r.attempt, e.outcome, config.trace)) !=
          cbm::SendResult::kAccepted) {
        return kExitChannel;
      }
    }
  }
}

int serve(cbm::WorkerChannel& channel) {
  auto first = channel.receive();
  if (!first) return kExitChannel;
  auto config = cbm::decode_worker_config(*first);
  if (!config) {
    std::fprintf(stderr, "concurrent_bigmodel_worker: %s\n", config.error().message.c_str());
    return kExitChannel;
  }
  const char* key = std::getenv("BIGMODEL_API_KEY");
  config->client.api_key = key != nullptr ? key : "";
  return config->attempts == 1 ? serve_one_at_a_time(channel, config.value()) : serve_on_a_loop(channel, config.value());
}

// The worker's whole life, whether it was exec'd or forked by the launcher.
int run_worker(const Args& args) {
  try {
    cbm::WorkerChannel channel(args.channel, args.fd);
    return serve(channel);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concurrent_bigmodel_worker[%d]: %s\n", args.slot, e.what());
    return kExitChannel;
  }
}

// A worker's end. Its own objects are gone by now (run_worker's scope); what is left is the libraries'
// exit handlers, and those only give memory back one free() at a time (OpenSSL's tables, libcurl's and
// the C++ runtime's). In a forked worker every one of those writes lands on a page still shared with
// the launcher, which the kernel must first copy: at 256 workers that was most of a run's shutdown.
// The kernel takes the whole address space back at once instead; nothing is buffered (stderr is
// unbuffered, stdout unused).
[[noreturn]] void end_worker(int status) {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_do_leak_check();  // the check exit() would have run
#endif
  ::_exit(status);
}

// --- launcher mode ----------------------------------------------------------------------------------

// Sends one message to the supervisor, with `fd` attached when >= 0. Blocks: the supervisor reads
// whenever it waits for a reply or an exit report, so a full socket drains.
bool send_message(const lp::LauncherMessage& message, int fd = -1) {
  const ssize_t n = cbm::send_with_fd(lp::kControlFd, &message, sizeof message, fd, MSG_NOSIGNAL);
  return n == static_cast<ssize_t>(sizeof message);
}

struct Request {
  lp::SpawnRequest spawn{};
  int channel_fd = -1;  // owned
};

enum class Receive { request, invalid, end };

// Reads the next request. `invalid` leaves no descriptor open; `end` means the supervisor is gone.
Receive receive_request(Request& out) {
  bool truncated = false;
  const ssize_t n = cbm::recv_with_fd(lp::kControlFd, &out.spawn, sizeof out.spawn, 0, out.channel_fd, truncated);
  if (n <= 0) return Receive::end;
  const bool valid = n == static_cast<ssize_t>(sizeof out.spawn) && !truncated && out.spawn.version == lp::kVersion &&
                     out.spawn.slot >= 0 && out.channel_fd >= 0 &&
                     std::memchr(out.spawn.channel, '\0', sizeof out.spawn.channel) != nullptr;
  if (valid) return Receive::request;
  if (out.channel_fd >= 0) ::close(out.channel_fd);
  return Receive::invalid;
}

// In the freshly forked worker: ties its life to the launcher's (which is tied to the supervisor's),
// restores the signal mask and keeps only its channel socket, as fd 3.
Args become_worker(const Request& request, pid_t launcher) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != launcher) ::_exit(kExitChannel);
  // dup2 onto fd 3 also closes this copy of the launcher's control socket.
  if (::dup2(request.channel_fd, kWorkerChannelFd) < 0) ::_exit(kExitChannel);
  ::close(request.channel_fd);
  if (::syscall(SYS_close_range, kWorkerChannelFd + 1, ~0U, 0) != 0) ::_exit(kExitChannel);
  return Args{request.spawn.channel, kWorkerChannelFd, request.spawn.slot};
}

// Serves one request. Returns, in the forked worker only, that worker's arguments; false in `ok` when
// the supervisor is gone.
std::optional<Args> serve_request(const Request& request, bool& ok) {
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) return become_worker(request, launcher);
  const int fork_error = errno;
  ::close(request.channel_fd);
  if (pid < 0) {
    ok = send_message({lp::MessageKind::spawn_failed, 0, fork_error});
    return std::nullopt;
  }
  // Opened before the child can be reaped here, so it names this worker and no other process, ever.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);  // unreaped child: the pid is still this worker's; its exit report follows
    ok = send_message({lp::MessageKind::spawn_failed, 0, err});
    return std::nullopt;
  }
  ok = send_message({lp::MessageKind::spawned, pid, 0}, pidfd);
  ::close(pidfd);
  return std::nullopt;
}

// Reaps every exited worker and reports it. False when the supervisor is gone.
bool report_exits() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (!send_message({lp::MessageKind::exited, pid, status})) return false;
  }
  return true;
}

// Entries of a /proc/self directory other than "." and ".."; -1 if it cannot be read.
int count_entries(const char* path) {
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) n += e->d_name[0] != '.' ? 1 : 0;
  ::closedir(dir);
  return n;
}

// What makes fork() safe here and what every forked worker relies on: one thread (no lock held by a
// thread that the child would not have), and no descriptor beyond stdio and the control socket (a
// worker closes all but its channel: a library's hidden descriptor would vanish under it).
bool ready_to_fork() {
  const int threads = count_entries("/proc/self/task");
  const int fds = count_entries("/proc/self/fd") - 1;  // minus the one opendir() uses
  if (threads == 1 && fds >= 0 && fds <= lp::kControlFd + 1) return true;
  std::fprintf(stderr, "concurrent_bigmodel_worker --launcher: %d threads, %d descriptors: not forking\n",
               threads, fds);
  return false;
}

// Serves spawn requests and reports exits until the supervisor closes the control socket (nullopt).
// Returns in each forked worker, with that worker's arguments.
std::optional<Args> serve_launcher() {
  sigset_t child_exits;
  sigemptyset(&child_exits);
  sigaddset(&child_exits, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &child_exits, nullptr);
  const int exits_fd = ::signalfd(-1, &child_exits, SFD_CLOEXEC | SFD_NONBLOCK);
  if (exits_fd < 0) {
    std::perror("concurrent_bigmodel_worker --launcher: signalfd");
    return std::nullopt;
  }
  bool ok = send_message({lp::MessageKind::hello, static_cast<std::int32_t>(::getpid()), lp::kVersion});
  while (ok) {
    pollfd fds[2] = {{lp::kControlFd, POLLIN, 0}, {exits_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) {
      signalfd_siginfo info[16];
      while (::read(exits_fd, info, sizeof info) > 0) {
      }
      ok = report_exits();
    }
    if (ok && fds[0].revents != 0) {
      Request request;
      switch (receive_request(request)) {
        case Receive::end:
          ok = false;
          break;
        case Receive::invalid:
          ok = send_message({lp::MessageKind::spawn_failed, 0, EINVAL});
          break;
        case Receive::request:
          if (auto worker = serve_request(request, ok)) return worker;
          break;
      }
    }
  }
  ::close(exits_fd);
  return std::nullopt;  // the workers die with this process (PR_SET_PDEATHSIG)
}

// The launcher's life, and in each worker it forks, that worker's.
int run_launcher() {
  // Initialised once here, inherited by every worker: OpenSSL's initialisation (config, error strings,
  // algorithm tables) would otherwise cost each worker more CPU than its fork. Forking after it is safe:
  // it starts no thread and keeps no descriptor (ready_to_fork() checks), and OpenSSL's random generator
  // reseeds in a process with a new pid. A worker's own CurlGlobal then only counts a reference.
  std::optional<cbm::CurlGlobal> curl;
  try {
    curl.emplace();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concurrent_bigmodel_worker --launcher: %s\n", e.what());
    return kExitChannel;
  }
  if (!ready_to_fork()) return kExitChannel;
  const auto worker = serve_launcher();
  // The launcher's end too: its exit handlers would only free, page by page, what the kernel takes
  // back at once (the supervisor waits for this exit).
  end_worker(worker ? run_worker(*worker) : 0);
}

}  // namespace

int main(int argc, char** argv) {
  // Die with the supervisor even if it is SIGKILLed; the getppid() check closes the race with a
  // supervisor that died before the prctl.
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent == 1 || ::getppid() != parent) return kExitChannel;

  // The supervisor blocks TERM/INT/HUP/USR1 for its signal thread; a worker takes them by default.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGCHLD, SIG_DFL);  // the launcher reaps its workers with waitpid

  // One malloc arena: a worker's attempts share one thread, and every thread a library starts (libcurl's
  // threaded resolver) would otherwise get an arena of its own, pages each worker pays for in RSS.
  ::mallopt(M_ARENA_MAX, 1);
  if (argc == 2 && std::string_view(argv[1]) == "--launcher") return run_launcher();
  const auto args = parse_args(argc, argv);
  if (!args) {
    std::fprintf(stderr,
                 "usage: concurrent_bigmodel_worker --channel NAME --fd N --slot S | --launcher "
                 "(started by concurrent_bigmodel)\n");
    return kExitBadUsage;
  }
  end_worker(run_worker(*args));
}
