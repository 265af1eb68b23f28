// AsyncExecutor (--mode asyncio): one thread, one event loop, up to --concurrency pipelines in flight
// over curl_multi (AsyncHttp: reused handles, keep-alive, HTTP/2 multiplexing where offered). Each
// task is a small state machine driven by the loop:
//
//   ready --dispatch--> running (its PipelineAttempt's requests, one after another, on its slot)
//         --> finished | waiting to retry (a timer) --> ready
//
// and the loop reads like the process executor's:
//
//   handle_control -> refill -> dispatch -> wait (epoll: sockets, curl's timer, the control eventfd) -> collect
//
// Backoff waits, --delay between a slot's tasks and the drain grace are timers of the loop; nothing
// sleeps. An attempt's --timeout is its transfers' deadline. What it cannot survive, by nature: it is
// one thread of the supervisor, so a crash anywhere takes the run (the journal keeps what finished;
// --resume goes on from there).
#pragma once

#include <deque>
#include <optional>
#include <vector>

#include "async_http.hpp"
#include "bigmodel_client.hpp"
#include "concurrency_gate.hpp"
#include "logger.hpp"
#include "pipeline.hpp"
#include "progress.hpp"
#include "round_executor.hpp"
#include "round_tasks.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "run_ledger.hpp"
#include "run_observer.hpp"

namespace cbm {

class AsyncExecutor final : public RoundExecutor {
 public:
  explicit AsyncExecutor(const ExecutorContext& run);

  std::size_t run_round(std::uint32_t round, TopicSource& topics) override;

 private:
  using TaskIndex = RoundTasks::TaskIndex;

  // A place for one pipeline in flight (the threading mode's thread, the process mode's worker).
  struct Slot {
    std::optional<TaskIndex> task;
    std::optional<PipelineAttempt> attempt;
    std::optional<ConcurrencyGate::Permit> permit;  // the running attempt's place (limit and rate caps)
    Clock::time_point deadline{};      // the running attempt's --timeout
    Clock::time_point available_at{};  // idle: --delay after its last task
  };

  void handle_control();
  void dispatch();
  void wait_for_events();
  void collect();

  void start_attempt(std::size_t slot, TaskIndex task);
  void send_next(std::size_t slot);
  void end_attempt(std::size_t slot);
  void release(std::size_t slot);
  void stop_all_now();
  void log_status();
  ExecutorGauges gauges() const;

  BigModelProtocol protocol_;
  PipelineSteps steps_;
  AsyncHttp http_;
  ConcurrencyGate gate_;  // adaptive in-flight limit and --rpm/--tpm: try_acquire, never blocks
  std::vector<Slot> slots_;
  // Idle slots, oldest first: --delay is the same for all, so this is also the order they become free.
  std::deque<std::size_t> idle_;
  std::size_t running_ = 0;
  std::vector<AsyncHttp::Finished> finished_;  // reused by collect()

  RoundTasks tasks_;  // the current round's tasks not finished yet
};

}  // namespace cbm
