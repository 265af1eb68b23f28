// WorkerPool: a fixed number of worker slots, each with at most one worker process and its
// shared-memory channel — process supervision that knows nothing of tasks (s6's supervise, gunicorn's
// arbiter without the requests). It spawns on demand, watches each worker through its pidfd and its
// channel's doorbell in one epoll set (with the run's control eventfd), reaps, terminates (SIGTERM,
// then SIGKILL after --kill-grace), and restarts a worker that died on its own after a backoff; its
// RestartGovernor decides when deaths mean the pool must give up.
//
// Who calls what: the ProcessTransport calls everything, on the engine's thread; the pool reports
// through Events, from inside wait() and kill() only. A worker's messages are always reported before
// its exit, so a result sent just before a death is never lost.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "logger.hpp"
#include "restart_governor.hpp"
#include "run_clock.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "timer_heap.hpp"
#include "unique_fd.hpp"
#include "worker_launcher.hpp"

namespace cbm {

class SupervisorChannel;
class WorkerProcess;

class WorkerPool {
 public:
  using Clock = std::chrono::steady_clock;

  class Events {
   public:
    virtual void worker_message(std::size_t slot, std::string message) = 0;
    // The slot's worker is gone. `restarting`: it died on its own and counts as a restart (its slot
    // waits a backoff); not when the pool or its user stopped it, its fork server died, or the run is
    // stopping now.
    virtual void worker_exited(std::size_t slot, const std::string& how, bool restarting) = 0;

   protected:
    ~Events() = default;
  };

  // `processes` slots; `hello` is the first message every worker gets. Throws when workers cannot be
  // run at all (no worker program, SIGCHLD ignored, no epoll).
  WorkerPool(const RunConfig& config, std::size_t processes, std::string hello, RunControl& control, Logger& log,
             RunClock& clock);
  ~WorkerPool();  // closes every channel (workers exit on EOF), then reaps them, SIGKILLed if they linger
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  std::size_t size() const { return slots_.size(); }
  // A worker is up and not being stopped.
  bool running(std::size_t slot) const;
  // Running, or down with its restart backoff over and this turn's start budget (kStartSlice) left.
  // When false for a down slot, the next wait() returns by the time it may be true.
  bool can_start(std::size_t slot);
  // A running worker for `slot`, started now if needed. False when it could not start (logged and
  // counted as a death).
  bool ensure_running(std::size_t slot);
  void send(std::size_t slot, std::string message);
  // The slot's worker answered as it should: the pool is making progress (restart intensity), and the
  // slot's restart backoff starts over.
  void note_progress(std::size_t slot);
  // Stopping a worker: SIGTERM now and SIGKILL after --kill-grace (terminate); SIGKILL now, reaped and
  // reported before this returns (kill); SIGKILL now, reported by wait() (replace); its channel
  // closed, so it exits by itself, SIGKILLed after kExitWait (retire).
  void terminate(std::size_t slot);
  void kill(std::size_t slot, Events& events);
  void replace(std::size_t slot);
  void retire(std::size_t slot);

  // Sleeps until `until`, a wake-up of the run's control, or a worker's event; reports what happened.
  void wait(Clock::time_point until, Events& events);

  std::uint64_t restarts() const { return restarts_; }
  // Why the pool gave up (workers keep dying and nothing finishes), once it has.
  const std::optional<std::string>& gave_up() const { return gave_up_; }

 private:
  struct Slot;
  static constexpr std::chrono::milliseconds kExitWait{1000};
  // The longest one turn of the loop spends starting workers: hundreds take a good part of a second,
  // and results that come in meanwhile are collected between slices.
  static constexpr std::chrono::milliseconds kStartSlice{5};
  // Bytes per direction of a worker's channel: a task is under 1 KiB, a result a few KiB (larger ones
  // stream through). The rings' pages are shared with the worker and touched as they wrap, so each
  // worker costs up to twice this in summed PSS (64 KiB rings: 32 MiB of it at 256 workers).
  static constexpr std::size_t kRingCapacity = 16 * 1024;

  void reap(Events& events);
  void read_messages(Slot& s, Events& events);
  void on_exit(Slot& s, Events& events);
  void fire_kill_timers();
  void watch(int fd, std::uint64_t tag);
  void release(Slot& s);  // forgets its channel and process (reaped or not)

  const RunConfig& config_;
  const std::string hello_;
  RunControl& control_;
  Logger& log_;
  RunClock& clock_;
  WorkerLauncher launcher_;  // declared before slots_: it outlives the workers it forked
  UniqueFd epoll_;
  const std::uint64_t instance_;  // this pool's number in the process, in its channels' names
  std::vector<std::unique_ptr<Slot>> slots_;
  RestartGovernor governor_;
  struct KillTimer {
    std::size_t slot;
    std::uint64_t generation;
  };
  TimerHeap<KillTimer> kill_timers_;
  std::optional<Clock::time_point> start_wake_;   // a refused start may succeed then
  std::optional<Clock::time_point> slice_began_;  // this turn's first start
  std::uint64_t restarts_ = 0;
  std::optional<std::string> gave_up_;
};

}  // namespace cbm
