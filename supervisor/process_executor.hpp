// ProcessExecutor (--mode multiprocessing): N worker processes, one shared-memory channel each, driven
// by one single-threaded loop (gunicorn's arbiter, ninja's SubprocessSet):
//
//   handle_control -> reap_workers -> enforce_deadlines -> start_workers -> dispatch
//     -> retire_spare_workers -> wait
//
// The loop sleeps in epoll_wait() on the control eventfd, every channel's doorbell and every worker's pidfd,
// with a timeout equal to the next deadline. A worker may be SIGKILLed at any instant: its channel is
// thrown away with it, its task's attempt counts as failed and goes back through the retry policy, and
// the slot restarts with backoff. More than --max-restarts unexpected deaths within --restart-period
// abort the run (Erlang/OTP restart intensity).
#pragma once

#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "adaptive_limit.hpp"
#include "logger.hpp"
#include "progress.hpp"
#include "rate_limit.hpp"
#include "round_executor.hpp"
#include "round_tasks.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "run_ledger.hpp"
#include "run_observer.hpp"
#include "worker_launcher.hpp"

namespace cbm {

class SupervisorChannel;
class WorkerProcess;

class ProcessExecutor final : public RoundExecutor {
 public:
  explicit ProcessExecutor(const ExecutorContext& run);
  ~ProcessExecutor() override;  // stops every worker (EOF on its channel, then SIGKILL) and reaps it

  std::size_t run_round(std::uint32_t round, TopicSource& topics) override;

 private:
  struct Slot;
  using TaskIndex = RoundTasks::TaskIndex;

  void handle_control();
  void reap_workers();
  void enforce_deadlines();
  void start_workers();
  void dispatch();
  void retire_spare_workers();
  // Whether a task may go out now: not stopping, one is ready, the in-flight limit and --rpm/--tpm allow.
  bool may_dispatch(Clock::time_point now, std::size_t in_flight) const;
  // Sends the next ready task to idle slot `s` (nothing if its channel has closed); counts it in `in_flight`.
  void dispatch_to(Slot& s, Clock::time_point now, std::size_t& in_flight);
  void wait_for_events();

  void on_messages(Slot& slot);
  void on_worker_exit(Slot& slot);
  void stop_all_now();
  void note_restart(const Slot& slot, const std::string& why);
  void log_status();
  ExecutorGauges gauges() const;
  bool has_work() const;
  std::size_t busy_slots() const;  // attempts in flight
  void watch(int fd, std::uint64_t tag);
  void unwatch(int fd);
  void release_worker(Slot& slot);  // forgets its channel and process (reaped or not)

  const std::filesystem::path worker_path_;
  WorkerLauncher launcher_;       // declared before slots_: it outlives the workers it forked
  int epoll_fd_;
  std::string worker_config_message_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::deque<Clock::time_point> recent_restarts_;
  std::uint64_t restarts_total_ = 0;
  const std::uint64_t instance_;  // this executor's number in the process, in its channels' names
  AdaptiveLimit limit_;  // tasks in flight allowed now (adapts to 1302/1305)
  RateLimit rate_;       // --rpm / --tpm: when the next attempt may start

  RoundTasks tasks_;  // the current round's tasks not finished yet
  bool last_round_ = false;  // the current round is the run's last (--iterations)
  struct {
    std::size_t count = 0;  // workers started by the slices of start_workers() so far
    Clock::time_point began{};
  } starting_;  // the start of a batch of workers, spread over turns of the loop
};

}  // namespace cbm
