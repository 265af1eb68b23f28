#include "attempt_engine.hpp"

#include <algorithm>
#include <cstdio>

#include "error_classification.hpp"
#include "retry_policy.hpp"

namespace cbm {
namespace {

// After this many waits for a usage cap's reset, a task's next cap is retried with backoff within
// --max-retries like a retryable failure: a server that keeps naming a reset and refusing after it
// cannot hold a task forever.
constexpr int kMaxQuotaWaits = 5;
// Dispatch resumes this long after the reset the platform names (to the second): a platform clock a
// little behind ours does not answer the first request with the cap again.
constexpr std::chrono::seconds kQuotaMargin{1};

// "HTTP 429 code 1113 (account in arrears: no balance): <the platform's message>".
std::string describe_with_meaning(const ApiError& error) {
  std::string text;
  if (error.http_status != 0) {
    text += "HTTP ";
    text += std::to_string(error.http_status);
  }
  if (!error.code.empty()) {
    text += text.empty() ? "code " : " code ";
    text += error.code;
    if (const ErrorCodeInfo* row = find_error_code(error.code)) {
      text += " (";
      text += row->meaning;
      text += ')';
    }
  }
  if (!text.empty()) text += ": ";
  text += error.message;
  return text;
}

// The error an attempt ended early by the engine carries, the same whichever transport ran it.
ApiError ended_early(CancelCause cause, Clock::duration timeout) {
  ApiError e;
  if (cause == CancelCause::timeout) {
    e.kind = ErrorKind::timeout;
    e.error_class = ErrorClass::retryable;
    e.message = "the attempt exceeded --timeout " + seconds_text(timeout);
  } else {
    e.kind = ErrorKind::cancelled;
    e.error_class = ErrorClass::task_fatal;
    e.message = "the run was stopped during the attempt";
  }
  return e;
}

// An error an early end can explain (the transfer aborted, the worker killed, the deadline passed). An
// answer that had come back before the cancel reached the attempt (a 401, say) keeps its own error.
bool caused_by_cancel(const AttemptOutcome& o) {
  if (o.ok()) return false;
  const ErrorKind k = o.error->kind;
  return k == ErrorKind::cancelled || k == ErrorKind::crash || k == ErrorKind::timeout || k == ErrorKind::transport;
}

}  // namespace

AttemptEngine::AttemptEngine(const ExecutorContext& run, std::unique_ptr<Transport> transport, DrainPolicy drain)
    : RoundExecutor(run),
      transport_(std::move(transport)),
      drain_policy_(drain),
      gate_(static_cast<int>(transport_->slots()), run.config.rate, run.config.pipeline.search ? 2 : 1,
            run.clock.now(), run.config.shared_admission.get()),
      book_(run.ledger, run.config.batch_size > 0 ? static_cast<std::size_t>(run.config.batch_size)
                                                  : 4 * transport_->slots()),
      slots_(transport_->slots()),
      rng_(std::random_device{}()),
      budget_(run.config.budget, run.config.prices, run.config.pipeline.search_settings.engine) {
  for (std::size_t i = 0; i < slots_.size(); ++i) idle_.push_back(i);
  if (config_.shared_admission) config_.shared_admission->bind_log(log_);
}

AttemptEngine::~AttemptEngine() = default;

std::size_t AttemptEngine::run_round(std::uint32_t round, TopicSource& topics) {
  book_.begin(round, topics);
  if (!budget_seeded_) {
    // A run budget is the whole run's, --resume's records included; a daily one counts from today's
    // first attempt (restored records carry no day).
    if (budget_.budget().period == BudgetPeriod::run) budget_.add(ledger_.totals().spend);
    budget_seeded_ = true;
  }
  last_round_ = config_.iterations != 0 && round >= static_cast<std::uint32_t>(config_.iterations);
  stopped_now_ = false;
  drain_deadline_.reset();
  try {
    loop();
  } catch (const std::exception& e) {
    // Before anything was sent (a --resume over changed input, found at once) it is a usage error
    // for the caller: exit 2, nothing spent. Later, the run ends cleanly: aborted, with its records.
    if (attempts_started_ == 0) {
      book_.end();
      throw;
    }
    fail_run(e.what());
  }
  return book_.end();
}

void AttemptEngine::loop() {
  while (!book_.done()) {
    fire_due_timers();
    if (control_.take_status()) log_status();
    apply_stop_rules();
    refill();
    dispatch();
    retire_if_done();
    if (book_.done()) break;
    progress_.tick(gauges());
    wait();
  }
}

void AttemptEngine::fire_due_timers() {
  const auto now = clock_.now();
  if (now >= next_deadline_) expire_attempts(now);
  if (now >= next_maintain_) next_maintain_ = gate_.maintain(now);
  while (auto timer = timers_.pop_due(now)) {
    switch (timer->kind) {
      case Timer::Kind::retry:
        book_.retry_due(timer->target);
        break;
      case Timer::Kind::slot_free:
        idle_.push_front(timer->target);
        break;
      case Timer::Kind::admission:
        admission_timer_set_ = false;
        break;
      case Timer::Kind::quota_resume:
        end_pause_if_due();
        break;
      case Timer::Kind::give_up:
        if (failing_ && running_ > 0) throw std::runtime_error("running attempts did not come back after the stop");
        break;
      case Timer::Kind::drain_end:
        if (control_.level() == StopLevel::drain) {
          log_.warn("drain grace over: stopping in-flight tasks now");
          control_.stop_now();
        }
        break;
    }
  }
}

// Attempts past their --timeout are ended through the transport (their outcomes come back as timeouts).
// Deadlines live in the slots, not the timer heap: an attempt that ends in time leaves nothing behind.
void AttemptEngine::expire_attempts(Clock::time_point now) {
  next_deadline_ = Clock::time_point::max();
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    Slot& s = slots_[slot];
    if (!s.task || s.cancelled) continue;
    if (now < s.deadline) {
      next_deadline_ = std::min(next_deadline_, s.deadline);
      continue;
    }
    log_.warn(slot_name(slot) + " task " + std::to_string(*s.task) + " attempt " +
              std::to_string(book_.at(*s.task).attempts()) + " passed --timeout " +
              seconds_text(transport_->attempt_timeout(config_.timeout)) + ": ending it");
    s.cancelled = CancelCause::timeout;
    transport_->cancel(slot, CancelCause::timeout);
  }
}

// A run-fatal error stops the run at once. A drain (TERM/INT) stops taking tasks — under
// DrainPolicy::in_flight what waits is cancelled now — and after --drain-grace becomes an immediate
// stop, which cancels what waits and ends the running attempts (each still ends in one record).
void AttemptEngine::apply_stop_rules() {
  // A budget's abort lets the attempts in flight finish (stop_for_budget); every other abort ends them.
  if (ledger_.abort_reason() && !budget_stopped_ && control_.level() != StopLevel::now) control_.stop_now();
  const auto now = clock_.now();
  const StopLevel level = control_.level();
  if (level == StopLevel::drain && !drain_deadline_) {
    drain_deadline_ = now + config_.drain_grace;
    timers_.set(*drain_deadline_, Timer{Timer::Kind::drain_end});
    if (drain_policy_ == DrainPolicy::in_flight) {
      log_.info("draining: no new tasks; in-flight tasks have " + seconds_text(config_.drain_grace) + " to finish");
      book_.cancel_waiting(false, now);
    } else {
      log_.info("draining: the accepted tasks have " + seconds_text(config_.drain_grace) + " to finish");
    }
  }
  if (level != StopLevel::now || stopped_now_) return;
  stopped_now_ = true;
  // Running attempts first: reading out the source below may throw (a --resume over changed input).
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    Slot& s = slots_[slot];
    if (!s.task || s.cancelled == CancelCause::stop) continue;
    s.cancelled = CancelCause::stop;
    transport_->cancel(slot, CancelCause::stop);
  }
  book_.cancel_waiting(ledger_.abort_reason().has_value(), now);
}

bool AttemptEngine::may_dispatch() const {
  const StopLevel level = control_.level();
  if (budget_stopped_) return false;
  return level == StopLevel::none || (level == StopLevel::drain && drain_policy_ == DrainPolicy::accepted);
}

void AttemptEngine::refill() {
  if (may_dispatch()) book_.refill(slots_.size());
}

void AttemptEngine::dispatch() {
  // The budget is asked only when a task waits: a run whose last attempts are in flight ends as it
  // would have (the budget cannot stop what is already sent).
  if (!may_dispatch() || paused() || !book_.has_ready() || budget_holds_dispatch()) return;
  const auto now = clock_.now();
  while (book_.has_ready()) {
    const auto slot = take_startable_slot();
    if (!slot) return;
    auto permit = gate_.try_acquire(now);
    if (!permit) {
      idle_.push_front(*slot);
      // While a rate cap holds the next attempt back, wake when it lets it go (a binding in-flight
      // limit has no time: an attempt's end frees the place).
      const auto admission = gate_.next_admission(now);
      if (admission && !admission_timer_set_) {
        timers_.set(*admission, Timer{Timer::Kind::admission});
        admission_timer_set_ = true;
      }
      return;
    }
    const bool leased = permit->lease.has_value();
    start_attempt(*slot, book_.pop_ready(), *permit);
    // A shared lease lives while it is renewed: the gate says when (at once if none was held before).
    if (leased) next_maintain_ = gate_.maintain(now);
  }
}

// The most recently freed slot first: in process mode its worker is warm (and spares stay unstarted).
std::optional<std::size_t> AttemptEngine::take_startable_slot() {
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    if (!transport_->prepare(*it)) continue;
    const std::size_t slot = *it;
    idle_.erase(it);
    return slot;
  }
  return std::nullopt;
}

void AttemptEngine::start_attempt(std::size_t slot, TaskId id, ConcurrencyGate::Permit permit) {
  Slot& s = slots_[slot];
  const auto now = clock_.now();
  const Task& task = book_.at(id).start_attempt(now);
  s.task = id;
  s.permit = permit;
  s.cancelled.reset();
  ++running_;
  ++attempts_started_;
  const auto deadline = now + transport_->attempt_timeout(config_.timeout);
  s.deadline = deadline;
  next_deadline_ = std::min(next_deadline_, deadline);
  observer_.attempt_started(task, static_cast<int>(slot));
  transport_->start(slot, task, deadline);
}

// In the run's last round, once no task is left to start, idle slots let go of their workers.
void AttemptEngine::retire_if_done() {
  if (!last_round_ || !book_.source_done() || book_.has_ready() || book_.waiting_count() > 0) return;
  transport_->retire_idle();
}

void AttemptEngine::wait() {
  const auto now = clock_.now();
  auto until = std::min({now + progress_.next_due(), next_deadline_, next_maintain_});
  if (const auto timer = timers_.next()) until = std::min(until, *timer);
  transport_->wait(until, *this);
}

void AttemptEngine::attempt_ended(std::size_t slot, AttemptOutcome outcome) {
  Slot& s = slots_[slot];
  if (!s.task) throw std::logic_error(slot_name(slot) + " reported an attempt it was not running");
  const TaskId id = *s.task;
  const auto now = clock_.now();
  if (s.cancelled && caused_by_cancel(outcome)) outcome.error = ended_early(*s.cancelled, config_.timeout);
  // --accept-incomplete: a cut or empty analysis is the answer (its steps keep the finish_reason).
  if (config_.accept_incomplete && !outcome.ok() && outcome.error->kind == ErrorKind::incomplete) {
    outcome.error.reset();
  }
  const bool stopped = s.cancelled == CancelCause::stop;
  const auto limit_change = gate_.release(*s.permit, outcome, now);
  budget_.roll(clock_.wall_now());  // an attempt that ends after midnight counts in the new day
  budget_.add_steps(outcome.steps);
  s.task.reset();
  s.permit.reset();
  s.cancelled.reset();
  --running_;
  free_slot(slot);

  TaskProgress& t = book_.at(id);
  t.end_attempt(outcome);
  crashes_.note(id, !outcome.ok() && outcome.error->kind == ErrorKind::crash);
  observer_.attempt_ended(t.task(), outcome, static_cast<int>(slot));
  if (limit_change) announce_limit(limit_change->from, limit_change->to, outcome.ok());
  if (outcome.ok()) {
    book_.finish(id, t.finish(TaskStatus::succeeded, std::move(outcome), static_cast<int>(slot), now));
  } else if (stopped) {
    book_.finish(id, t.cancel(CancelPoint::during_attempt, ledger_.abort_reason().has_value(),
                              static_cast<int>(slot), now));
  } else {
    after_failure(id, std::move(outcome), slot);
  }
}

// The retry policy's verdict on a failed attempt: the task fails, aborts the run (run-fatal), is
// cancelled (the run is stopping), or waits its backoff to retry.
void AttemptEngine::after_failure(TaskId id, AttemptOutcome outcome, std::size_t slot) {
  TaskProgress& t = book_.at(id);
  const ApiError& error = *outcome.error;
  const auto now = clock_.now();
  log_.warn(slot_name(slot) + " task " + std::to_string(id) + " attempt " + std::to_string(t.attempts()) +
            " failed (" + std::string(to_string(error.error_class)) + ", " + std::string(to_string(error.kind)) +
            "): " + error.describe());
  if (error.kind == ErrorKind::crash && t.excused() < CrashAttribution::kMaxExcused && crashes_.background(id)) {
    t.excuse_attempt();
    log_.info(slot_name(slot) + " task " + std::to_string(id) +
              ": not counted against its retries (workers are dying under other tasks too)");
  }
  const bool quota = error.error_class == ErrorClass::wait_until;
  if (quota && config_.on_quota == QuotaAction::stop) {
    ledger_.mark_aborted("usage cap: " + describe_with_meaning(error) +
                         " (--on-quota stop: the run stops here; --resume continues it after the reset)");
    control_.stop_now();
    // Cancelled, not failed: the cap is not the task's fault, and --resume runs it again.
    book_.finish(id, t.cancel(CancelPoint::before_retry, true, static_cast<int>(slot), now));
    return;
  }
  std::optional<Clock::time_point> retry_at;
  if (quota && error.resume_at && t.quota_waits() < kMaxQuotaWaits && may_dispatch()) {
    t.count_quota_wait();
    retry_at = pause_for_quota(error);
  } else {
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    const RetryDecision decision = decide_retry(config_.retry, error, t.charged_attempts(), jitter(rng_));
    if (std::holds_alternative<AbortRun>(decision)) {
      ledger_.mark_aborted("run-fatal API error: " + describe_with_meaning(error));
      control_.stop_now();
    }
    if (const auto* retry = std::get_if<RetryAfter>(&decision)) retry_at = now + retry->delay;
  }
  if (!retry_at) {
    book_.finish(id, t.finish(TaskStatus::failed, std::move(outcome), static_cast<int>(slot), now));
  } else if (!may_dispatch()) {
    book_.finish(id, t.cancel(CancelPoint::before_retry, ledger_.abort_reason().has_value(),
                              static_cast<int>(slot), now));
  } else {
    book_.wait_to_retry(id);
    timers_.set(*retry_at, Timer{Timer::Kind::retry, id});
  }
}

// Every task waits for the reset (the attempts running go on: they may bring a later reset, which
// lengthens the pause). The time is the platform's wall clock, turned into the engine's.
Clock::time_point AttemptEngine::pause_for_quota(const ApiError& error) {
  const WallClock::time_point until = *error.resume_at + kQuotaMargin;
  const auto end = clock_.now() + std::chrono::duration_cast<Clock::duration>(until - clock_.wall_now());
  if (paused() && end <= pause_end_) return pause_end_;
  pause_until(until, "usage cap");
  log_.warn("usage cap (code " + error.code + "): no task starts until " + local_time_of_day(until) +
            " (the platform's reset time, plus " + seconds_text(kQuotaMargin) + "); " + std::to_string(running_) +
            " attempts in flight go on");
  return pause_end_;
}

void AttemptEngine::pause_until(WallClock::time_point until, const char* reason) {
  pause_end_ = clock_.now() + std::chrono::duration_cast<Clock::duration>(until - clock_.wall_now());
  paused_until_wall_ = until;
  pause_reason_ = reason;
  timers_.set(pause_end_, Timer{Timer::Kind::quota_resume});
  observer_.quota_paused(until);
}

void AttemptEngine::end_pause_if_due() {
  if (!paused() || clock_.now() < pause_end_) return;  // a later reset moved the end
  paused_until_wall_.reset();
  if (std::string_view(pause_reason_) == "budget") {
    log_.info("budget period over (local midnight): the daily budget starts again, tasks start again");
  } else {
    log_.info("usage cap reset: tasks start again");
  }
  observer_.quota_paused(std::nullopt);
}

bool AttemptEngine::budget_holds_dispatch() {
  if (!budget_.budget().limited()) return false;
  budget_.roll(clock_.wall_now());  // a new day starts the daily budget over, whatever paused meanwhile
  if (!budget_.reached()) return false;
  if (budget_.budget().period == BudgetPeriod::day) {
    const WallClock::time_point midnight = next_local_midnight(clock_.wall_now());
    log_.warn("daily budget reached (" + budget_.describe() + "): no task starts until local midnight (" +
              local_time_of_day(midnight) + "); " + std::to_string(running_) + " attempts in flight go on");
    pause_until(midnight, "budget");
  } else {
    stop_for_budget();
  }
  return true;
}

// The run's budget is spent: nothing new starts, the attempts in flight finish (their usage counts),
// everything else is cancelled, and the run ends aborted (exit 3) with a reason that says how to go on.
void AttemptEngine::stop_for_budget() {
  budget_stopped_ = true;
  std::string reason = "budget: ";
  reason += budget_.describe();
  reason += " reached after ";
  reason += std::to_string(attempts_started_);
  reason += " attempts (";
  reason += std::to_string(running_);
  reason += " in flight were let finish); --resume with a larger --max-tokens-total / --max-cost continues the run";
  ledger_.mark_aborted(reason);
  log_.warn(reason);
  book_.cancel_waiting(true, clock_.now());
}

// The slot may take its next task after --delay.
void AttemptEngine::free_slot(std::size_t slot) {
  if (config_.delay.count() > 0) {
    timers_.set(clock_.now() + config_.delay, Timer{Timer::Kind::slot_free, slot});
  } else {
    idle_.push_front(slot);
  }
}

void AttemptEngine::worker_restarted(std::size_t slot) { observer_.worker_restarted(static_cast<int>(slot)); }

// A later deadline: expire_attempts() finds it (next_deadline_ may only be early, never late).
void AttemptEngine::attempt_restarted(std::size_t slot) {
  Slot& s = slots_[slot];
  if (!s.task || s.cancelled) return;
  s.deadline = clock_.now() + transport_->attempt_timeout(config_.timeout);
}

void AttemptEngine::transport_failed(std::string reason) {
  if (!ledger_.abort_reason()) ledger_.mark_aborted(std::move(reason));
  control_.stop_now();
}

// An exception from the topic source (say, --resume finding a changed topic) or the transport: the
// run is aborted, and the loop goes on until every task read has its record (running attempts are
// ended and come back cancelled). If the loop throws again, what runs is recorded as cancelled here.
void AttemptEngine::fail_run(const std::string& what) {
  log_.error("the run cannot go on: " + what);
  if (!ledger_.abort_reason()) ledger_.mark_aborted(what);
  control_.stop_now();
  // The transport may be what failed: its attempts get the drain grace to come back, no more.
  failing_ = true;
  timers_.set(clock_.now() + config_.drain_grace, Timer{Timer::Kind::give_up});
  try {
    loop();
  } catch (const std::exception& e) {
    log_.error("while stopping: " + std::string(e.what()));
    abandon_running();
  }
  failing_ = false;
}

// The attempts still running end here, without their outcomes: as a stop would end them (the
// transport is told, the permit goes back, observers hear of it, the task is cancelled during it).
void AttemptEngine::abandon_running() {
  const auto now = clock_.now();
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    Slot& s = slots_[slot];
    if (!s.task) continue;
    try {
      transport_->cancel(slot, CancelCause::stop);
    } catch (const std::exception& e) {
      log_.error(slot_name(slot) + " cannot be cancelled: " + e.what());
    }
    s.cancelled = CancelCause::stop;
    AttemptOutcome abandoned;
    abandoned.error = ended_early(CancelCause::stop, config_.timeout);
    attempt_ended(slot, std::move(abandoned));
  }
  try {
    book_.cancel_waiting(true, now);
  } catch (const std::exception& e) {
    log_.error("topics not read: " + std::string(e.what()));
  }
}

ExecutorGauges AttemptEngine::gauges() const {
  ExecutorGauges g;
  g.in_flight = running_;
  g.limit = gate_.limit();
  g.restarts = transport_->restarts();
  g.paused_until = paused_until_wall_;
  g.paused_for = pause_reason_;
  return g;
}

void AttemptEngine::log_status() {
  log_.info("status: " + progress_.line(gauges()) + ", " + std::to_string(book_.ready_count()) + " queued, " +
            std::to_string(book_.waiting_count()) + " waiting to retry");
}

std::string AttemptEngine::slot_name(std::size_t slot) const {
  std::string name = "[";  // appended, not prepended: g++ 12 at -O3 misreads a prepend (-Wrestrict)
  name += transport_->slot_label();
  name += std::to_string(slot);
  name += ']';
  return name;
}

}  // namespace cbm
