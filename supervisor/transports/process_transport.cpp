#include "process_transport.hpp"

#include "result_codec.hpp"
#include "worker_config.hpp"

namespace cbm {
namespace {

std::string hello_of(const RunConfig& config) {
  WorkerConfig wc;
  wc.client = config.client;
  wc.client.api_key.clear();  // the key reaches workers through their environment, never a message
  wc.pipeline = config.pipeline;
  wc.attempt_timeout = config.timeout;
  wc.trace = config.langsmith.has_value();  // the messages and answers cost wire bytes only when traced
  return encode_worker_config(wc);
}

AttemptOutcome crashed(std::string how) {
  AttemptOutcome o;
  o.error.emplace();
  o.error->kind = ErrorKind::crash;
  o.error->error_class = ErrorClass::retryable;
  o.error->message = std::move(how);
  return o;
}

}  // namespace

ProcessTransport::ProcessTransport(const RunConfig& config, RunControl& control, Logger& log, RunClock& clock)
    : log_(log),
      pool_(config, hello_of(config), control, log, clock),
      running_(pool_.size()) {}

bool ProcessTransport::prepare(std::size_t slot) {
  if (!pool_.can_start(slot)) return false;
  if (pool_.ensure_running(slot)) return true;
  restarted_.push_back(slot);  // a start that failed counts as a death (logged, backoff, intensity)
  return false;
}

// A worker that died since prepare() is reaped by the next wait(): the attempt then ends as a crash.
void ProcessTransport::start(std::size_t slot, const Task& task, Clock::time_point /*deadline*/) {
  running_[slot] = Running{task.id, task.attempt};
  pool_.send(slot, encode_task(task));
}

void ProcessTransport::cancel(std::size_t slot, CancelCause cause) {
  if (!running_[slot]) return;
  if (cause == CancelCause::timeout) {
    log_.warn("[w" + std::to_string(slot) + "] SIGTERM for the attempt's timeout");
    pool_.terminate(slot);
  } else {
    pool_.kill(slot, *this);  // a result that made it before the kill still counts
  }
}

void ProcessTransport::wait(Clock::time_point until, AttemptSink& sink) {
  if (ended_.empty()) pool_.wait(until, *this);
  for (std::size_t slot : std::exchange(restarted_, {})) sink.worker_restarted(slot);
  delivering_.swap(ended_);
  delivering_.deliver(sink);
  if (pool_.gave_up() && !failure_reported_) {
    failure_reported_ = true;
    sink.transport_failed(*pool_.gave_up());
  }
}

void ProcessTransport::retire_idle() {
  for (std::size_t slot = 0; slot < running_.size(); ++slot) {
    if (!running_[slot] && pool_.running(slot)) pool_.retire(slot);
  }
}

void ProcessTransport::worker_message(std::size_t slot, std::string message) {
  auto decoded = decode_outcome(message);
  const auto& r = running_[slot];
  if (!decoded || !r || decoded->task_id != r->task_id || decoded->attempt != r->attempt) {
    log_.error("[w" + std::to_string(slot) + "] sent an unexpected message" +
               (decoded ? std::string() : ": " + decoded.error().message) + "; replacing the worker");
    pool_.replace(slot);
    return;
  }
  pool_.note_progress(slot);  // a valid answer, not just any bytes
  end(slot, std::move(decoded->outcome));
}

void ProcessTransport::worker_exited(std::size_t slot, const std::string& how, bool restarting) {
  if (running_[slot]) end(slot, crashed(how + " during the attempt"));
  if (restarting) restarted_.push_back(slot);
}

void ProcessTransport::end(std::size_t slot, AttemptOutcome outcome) {
  running_[slot].reset();
  ended_.add(slot, std::move(outcome));
}

}  // namespace cbm
