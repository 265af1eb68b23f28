// EventLoopTransport (--mode asyncio): every attempt on one thread, the engine's, over curl_multi
// (AsyncHttp: reused handles, keep-alive, HTTP/2 multiplexing where offered). A slot is an easy
// handle and the PipelineAttempt using it; an attempt's requests go one after another on its slot,
// each with what is left of the attempt's deadline as its timeout. wait() is AsyncHttp's epoll wait,
// which also watches the run's control eventfd. What it cannot survive, by nature: it is a thread of
// the supervisor, so a crash anywhere takes the run (the journal keeps what finished).
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "async_http.hpp"
#include "bigmodel_client.hpp"
#include "pipeline.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "transport.hpp"

namespace cbm {

class EventLoopTransport final : public Transport {
 public:
  EventLoopTransport(const RunConfig& config, RunControl& control);

  std::size_t slots() const override { return slots_.size(); }
  std::string_view slot_label() const override { return "a"; }
  void start(std::size_t slot, const Task& task, Clock::time_point deadline) override;
  void cancel(std::size_t slot, CancelCause cause) override;
  void wait(Clock::time_point until, AttemptSink& sink) override;

 private:
  struct Slot {
    std::optional<PipelineAttempt> attempt;
    Clock::time_point deadline{};
    Endpoint endpoint = Endpoint::chat_completions;  // of the request in flight: how its answer is read
  };

  // Sends the attempt's next request, or, when it has none, hands its outcome to `ended_`.
  void send_next(std::size_t slot);

  RunControl& control_;
  BigModelProtocol protocol_;
  PipelineSteps steps_;
  AsyncHttp http_;
  std::vector<Slot> slots_;
  std::vector<AsyncHttp::Finished> finished_;                  // reused by wait()
  EndedAttempts ended_;       // attempts over, for the sink
  EndedAttempts delivering_;  // what wait() hands over (the sink starts nothing meanwhile)
};

}  // namespace cbm
