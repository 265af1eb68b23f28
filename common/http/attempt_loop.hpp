// AttemptLoop: many pipeline attempts at once on one thread, over one curl_multi loop (AsyncHttp). A
// slot is an easy handle and the PipelineAttempt using it; an attempt's requests go one after another
// on its slot, each with what is left of the attempt's deadline as its timeout. It is the one place
// attempts are driven asynchronously: the asyncio mode runs it on the supervisor's thread
// (EventLoopTransport), and a worker process runs it for the attempts its supervisor hands it
// (worker/main.cpp, --workers). Passive, like AsyncHttp: the caller's loop calls wait(), then
// take_ended(). Not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "async_http.hpp"
#include "bigmodel_client.hpp"
#include "pipeline.hpp"
#include "task.hpp"

namespace cbm {

class AttemptLoop {
 public:
  struct Ended {
    std::size_t slot;
    AttemptOutcome outcome;
  };

  // `slots` attempts may run at once; `wake_fd` ends a wait() when readable (see AsyncHttp).
  AttemptLoop(const ClientConfig& client, const PipelineConfig& pipeline, std::size_t slots, int wake_fd);

  std::size_t slots() const { return slots_.size(); }

  // Starts an attempt of `task` on idle `slot`; every request must end by `deadline`.
  void start(std::size_t slot, const Task& task, Clock::time_point deadline);
  // Abandons the slot's attempt, if any: its outcome (the steps that did finish, which were paid for)
  // ends as ErrorKind::cancelled, reported by the next take_ended().
  void cancel(std::size_t slot);

  // Sleeps until a transfer moves, `wake_fd` is readable or `timeout` passes, and moves the attempts
  // whose requests finished on to their next request; true when `wake_fd` is readable (the caller
  // drains it). Returns at once when an attempt already ended.
  bool wait(std::chrono::milliseconds timeout);
  // The attempts that ended since the last call, into `out` (cleared first), in the order they ended.
  void take_ended(std::vector<Ended>& out);

 private:
  struct Slot {
    std::optional<PipelineAttempt> attempt;
    Clock::time_point deadline{};
    Endpoint endpoint = Endpoint::chat_completions;  // of the request in flight: how its answer is read
  };

  // Sends the attempt's next request, or, when it has none, hands its outcome to `ended_`.
  void send_next(std::size_t slot);

  BigModelProtocol protocol_;
  PipelineSteps steps_;
  AsyncHttp http_;
  std::vector<Slot> slots_;
  std::vector<AsyncHttp::Finished> finished_;  // reused by wait()
  std::vector<Ended> ended_;
};

}  // namespace cbm
