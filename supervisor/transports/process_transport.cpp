#include "process_transport.hpp"

#include <algorithm>

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
  // A shared worker's attempts end at the engine's deadline through a cancel message, which names the
  // timeout as every mode does; the worker's own deadline is only a backstop, a grace later.
  if (attempts_per_worker(config) > 1) wc.attempt_timeout += config.kill_grace + std::chrono::seconds(1);
  wc.trace = config.langsmith.has_value();  // the messages and answers cost wire bytes only when traced
  wc.attempts = static_cast<int>(attempts_per_worker(config));
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

std::pair<std::uint32_t, std::uint64_t> key_of(const Task& task) { return {task.round, task.id}; }

}  // namespace

// Pool slots: one per slot without --workers; else the shared workers first, then a solo worker per
// slot (started only for an attempt that must run alone).
ProcessTransport::ProcessTransport(const RunConfig& config, RunControl& control, Logger& log, RunClock& clock)
    : config_(config),
      control_(control),
      log_(log),
      clock_(clock),
      per_worker_(attempts_per_worker(config)),
      homes_(shared_workers(config)),
      pool_(config, worker_processes_at_most(config), hello_of(config), control, log, clock),
      running_(static_cast<std::size_t>(config.concurrency)) {}

bool ProcessTransport::prepare(std::size_t slot) { return up(home(slot), slot); }

// Pool slot `process` has a running worker, started now if it may be (slot `slot`'s attempt waits
// for it). A start that failed counts as a death (logged, backoff, intensity).
bool ProcessTransport::up(std::size_t process, std::size_t slot) {
  if (!pool_.can_start(process)) return false;
  if (pool_.ensure_running(process)) return true;
  restarted_.push_back(slot);
  return false;
}

// A worker that died since prepare() is reaped by the next wait(): the attempt then ends as a crash.
void ProcessTransport::start(std::size_t slot, const Task& task, Clock::time_point /*deadline*/) {
  running_[slot] = Running{&task, home(slot), false, std::nullopt, false};
  if (per_worker_ > 1 && poison_.contains(key_of(task))) {
    run_alone(slot);
    return;
  }
  pool_.send(home(slot), encode_task(task));
}

void ProcessTransport::cancel(std::size_t slot, CancelCause cause) {
  if (!running_[slot]) return;
  Running& r = *running_[slot];
  const std::string label = "[w" + std::to_string(slot) + "] ";
  if (r.waiting) {  // not sent anywhere yet
    --waiting_;
    end(slot, crashed("cancelled before its worker started"));
  } else if (cause == CancelCause::stop) {
    pool_.kill(r.process, *this);  // a result that made it before the kill still counts
  } else if (alone(r)) {
    log_.warn(label + "SIGTERM for the attempt's timeout");
    pool_.terminate(r.process);
  } else if (!r.kill_at) {
    log_.warn(label + "cancelling the attempt for its timeout");
    pool_.send(r.process, encode_cancel(r.task->id, r.task->attempt));
    r.kill_at = clock_.now() + config_.kill_grace;
    ++cancels_sent_;
  }
}

void ProcessTransport::wait(Clock::time_point until, AttemptSink& sink) {
  if (ended_.empty()) {
    start_waiting();
    for (const auto& r : running_) {
      if (cancels_sent_ > 0 && r && r->kill_at) until = std::min(until, *r->kill_at);
    }
    pool_.wait(until, *this);
    kill_unanswered();
  }
  for (std::size_t slot : std::exchange(restarted_, {})) sink.worker_restarted(slot);
  for (std::size_t slot : std::exchange(rerun_, {})) sink.attempt_restarted(slot);
  delivering_.swap(ended_);
  delivering_.deliver(sink);
  if (pool_.gave_up() && !failure_reported_) {
    failure_reported_ = true;
    sink.transport_failed(*pool_.gave_up());
  }
}

void ProcessTransport::retire_idle() {
  for (std::size_t process = 0; process < homes_; ++process) {
    if (pool_.running(process) && attempts_on(process).empty()) pool_.retire(process);
  }
}

std::vector<std::size_t> ProcessTransport::attempts_on(std::size_t process) const {
  std::vector<std::size_t> slots;
  const bool is_solo = per_worker_ > 1 && process >= homes_;
  const std::size_t first = is_solo ? process - homes_ : process;
  const std::size_t last = is_solo ? first + 1 : running_.size();
  for (std::size_t slot = first; slot < last; slot += homes_) {
    if (running_[slot] && running_[slot]->process == process && !running_[slot]->waiting) slots.push_back(slot);
  }
  return slots;
}

std::string ProcessTransport::process_label(std::size_t process) const {
  if (per_worker_ == 1) return "[w" + std::to_string(process) + "] ";
  if (process >= homes_) return "[w" + std::to_string(process - homes_) + ", alone] ";
  return "[worker " + std::to_string(process) + " of " + std::to_string(homes_) + "] ";
}

void ProcessTransport::run_alone(std::size_t slot) {
  Running& r = *running_[slot];
  r.process = solo(slot);
  if (!r.waiting) ++waiting_;
  r.waiting = true;
  if (!up(r.process, slot)) return;  // start_waiting() tries again
  r.waiting = false;
  --waiting_;
  pool_.send(r.process, encode_task(*r.task));
  if (r.rerun) rerun_.push_back(slot);  // its --timeout starts now (again, if it waited for the worker)
}

void ProcessTransport::start_waiting() {
  for (std::size_t slot = 0; waiting_ > 0 && slot < running_.size(); ++slot) {
    if (running_[slot] && running_[slot]->waiting) run_alone(slot);
  }
}

// A shared worker that has not answered a cancel within --kill-grace is stuck: SIGKILL. Its other
// attempts then run again alone (worker_exited).
void ProcessTransport::kill_unanswered() {
  if (cancels_sent_ == 0) return;
  const auto now = clock_.now();
  for (std::size_t slot = 0; slot < running_.size(); ++slot) {
    auto& r = running_[slot];
    if (!r || !r->kill_at || now < *r->kill_at) continue;
    log_.warn("[w" + std::to_string(slot) + "] its worker did not answer the cancel in time: SIGKILL");
    r->kill_at = Clock::time_point::max();  // once
    pool_.replace(r->process);
  }
}

void ProcessTransport::worker_message(std::size_t process, std::string message) {
  auto decoded = decode_outcome(message);
  std::optional<std::size_t> slot;
  if (decoded) {
    for (std::size_t s : attempts_on(process)) {
      if (running_[s]->task->id == decoded->task_id && running_[s]->task->attempt == decoded->attempt) slot = s;
    }
  }
  if (!slot) {
    log_.error(process_label(process) + "sent an unexpected message" +
               (decoded ? std::string() : ": " + decoded.error().message) + "; replacing the worker");
    pool_.replace(process);
    return;
  }
  pool_.note_progress(process);  // a valid answer, not just any bytes
  const bool was_alone = per_worker_ > 1 && alone(*running_[*slot]);
  end(*slot, std::move(decoded->outcome));
  if (was_alone) pool_.retire(process);  // a solo worker runs one attempt
}

void ProcessTransport::worker_exited(std::size_t process, const std::string& how, bool restarting) {
  const auto slots = attempts_on(process);
  // Who killed a shared worker is unknown (an attempt it ran, one that had just ended, or something
  // outside): each of its attempts runs again alone, uncharged (not when the run stops now, nor an
  // attempt already cancelled: its end is the cancel's).
  const bool stop_now = control_.level() == StopLevel::now;
  const bool shared = per_worker_ > 1 && process < homes_ && !stop_now;
  if (shared && !slots.empty()) {
    log_.warn(process_label(process) + how + " with " + std::to_string(slots.size()) +
              (slots.size() == 1 ? " attempt: it runs" : " attempts: each runs") + " again alone");
  }
  for (std::size_t slot : slots) {
    Running& r = *running_[slot];
    if (shared && !r.kill_at) {
      r.rerun = true;
      rerun_.push_back(slot);
      run_alone(slot);
      continue;
    }
    // A solo worker died on its own: its attempt's task is a poison pill, its later attempts run alone.
    if (per_worker_ > 1 && process >= homes_ && restarting && !stop_now && !r.kill_at) {
      poison_.insert(key_of(*r.task));
      if (poison_.size() > kMaxPoison) poison_.erase(poison_.begin());
    }
    end(slot, crashed(how + " during the attempt"));
  }
  if (restarting) restarted_.push_back(process < homes_ ? process : process - homes_);
}

void ProcessTransport::end(std::size_t slot, AttemptOutcome outcome) {
  if (running_[slot]->kill_at) --cancels_sent_;
  running_[slot].reset();
  ended_.add(slot, std::move(outcome));
}

}  // namespace cbm
