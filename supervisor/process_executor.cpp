#include "process_executor.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <system_error>

#include "result_codec.hpp"
#include "shm_channel.hpp"
#include "worker_config.hpp"
#include "worker_process.hpp"

namespace cbm {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kRestartBackoffBase{50};
constexpr milliseconds kRestartBackoffCap{5000};
constexpr milliseconds kWorkerExitWait{1000};
// The longest a turn of the loop spends starting workers: hundreds take a good part of a second, and the
// results that come in meanwhile are collected (their workers given their next task) between slices.
constexpr milliseconds kStartSlice{5};
// epoll tags: slot * 2 for its channel, slot * 2 + 1 for its pidfd; the control eventfd is apart.
constexpr std::uint64_t kControlTag = ~std::uint64_t{0};

// Several executors may run at once in one process (the library): each numbers its channels apart.
std::uint64_t next_instance() {
  static std::atomic<std::uint64_t> count{0};
  return count.fetch_add(1) + 1;
}

milliseconds restart_backoff(int consecutive_failures) {
  milliseconds d = kRestartBackoffBase;
  for (int i = 1; i < consecutive_failures && d < kRestartBackoffCap; ++i) d *= 2;
  return std::min(d, kRestartBackoffCap);
}

ApiError worker_error(ErrorKind kind, std::string message) {
  ApiError e;
  e.kind = kind;
  e.error_class = ErrorClass::retryable;
  e.message = std::move(message);
  return e;
}

std::string secs(milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

struct ProcessExecutor::Slot {
  enum class State { down, idle, busy, terminating };

  int index = 0;
  std::uint64_t generation = 0;
  State state = State::down;
  std::unique_ptr<SupervisorChannel> channel;
  std::unique_ptr<WorkerProcess> process;
  std::optional<TaskIndex> task;
  RateLimit::Reservation reserved;  // busy: what its attempt was charged against --rpm/--tpm
  Clock::time_point deadline{};      // busy: the attempt's timeout; terminating: when SIGKILL follows
  Clock::time_point available_at{};  // down: restart backoff; idle: --delay between tasks
  int consecutive_failures = 0;
  bool timed_out = false;  // we SIGTERMed it for its attempt's timeout
  bool retiring = false;   // we are stopping it on purpose (shutdown, protocol violation)
  bool readable = false;   // epoll: the channel has something (messages, EOF)
  bool exited = false;     // epoll: the pidfd says the process ended

  std::string label() const { return "[w" + std::to_string(index) + "." + std::to_string(generation) + "]"; }
};

ProcessExecutor::ProcessExecutor(const ExecutorContext& run)
    : RoundExecutor(run),
      worker_path_(run.config.worker_executable),
      launcher_(worker_path_, run.config.client.api_key, run.log),
      epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
      instance_(next_instance()),
      limit_(run.config.concurrency),
      rate_(run.config.rate, run.config.pipeline.search ? 2 : 1, Clock::now()),
      tasks_(run.config, run.ledger, run.control, run.log, "w") {
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  watch(control_.wake_fd(), kControlTag);
  WorkerConfig wc;
  wc.client = config_.client;
  wc.client.api_key.clear();
  wc.pipeline = config_.pipeline;
  wc.attempt_timeout = config_.timeout;
  wc.trace = config_.langsmith.has_value();  // the messages and answers cost wire bytes only when traced
  worker_config_message_ = encode_worker_config(wc);
  if (::access(worker_path_.c_str(), X_OK) != 0) {
    throw std::runtime_error("worker executable not found or not executable: '" + worker_path_.string() +
                             "' (set Config::worker_executable)");
  }
  struct sigaction chld {};
  if (::sigaction(SIGCHLD, nullptr, &chld) == 0 && chld.sa_handler == SIG_IGN) {
    throw std::runtime_error("SIGCHLD is ignored (SIG_IGN): the kernel would reap the workers and hide how they "
                             "ended; restore SIG_DFL before a multiprocessing run");
  }
  if (const std::size_t swept = sweep_stale_channels(::getuid()); swept > 0) {
    log_.info("removed " + std::to_string(swept) + " shared-memory segments left by a dead supervisor");
  }
  for (int i = 0; i < config_.concurrency; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->index = i;
  }
}

ProcessExecutor::~ProcessExecutor() {
  // Closing a channel is the worker's signal to exit; give them all a moment together, then kill.
  for (auto& s : slots_) s->channel.reset();
  const auto deadline = Clock::now() + kWorkerExitWait;
  for (auto& s : slots_) {
    if (!s->process) continue;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (!s->process->reap_within(std::max(left, milliseconds::zero()))) s->process->kill_and_reap();
    s->process.reset();
  }
  ::close(epoll_fd_);
}

std::size_t ProcessExecutor::run_round(std::uint32_t round, TopicSource& topics) {
  tasks_.begin(round, topics);
  last_round_ = config_.iterations != 0 && round >= static_cast<std::uint32_t>(config_.iterations);

  while (!tasks_.done()) {
    handle_control();
    tasks_.refill(slots_.size());
    reap_workers();
    enforce_deadlines();
    start_workers();
    dispatch();
    retire_spare_workers();
    if (tasks_.done()) break;
    progress_.tick(gauges());
    wait_for_events();
  }
  return tasks_.end();
}

// Signals and run-wide decisions: a drain stops dispatch and cancels what waits; an immediate stop
// (second signal, drain grace over, run-fatal error) kills the workers and cancels what runs.
void ProcessExecutor::handle_control() {
  if (control_.take_status()) log_status();
  if (tasks_.apply_stop_rules()) stop_all_now();
}

void ProcessExecutor::reap_workers() {
  // Results first, from every worker that sent one: they must not wait behind other workers' exits
  // (at the end of a run, hundreds of workers stop while the last results come in).
  for (auto& s : slots_) {
    if (s->readable && s->channel) on_messages(*s);
    s->readable = false;
  }
  for (auto& s : slots_) {
    // Messages sent just before the exit are read first: a finished result is never lost to a crash.
    if (s->exited && s->process && s->process->try_reap()) {
      if (s->channel) on_messages(*s);
      on_worker_exit(*s);
    }
    s->exited = false;
  }
}

void ProcessExecutor::enforce_deadlines() {
  const auto now = Clock::now();
  for (auto& s : slots_) {
    if (s->state == Slot::State::busy && now >= s->deadline) {
      log_.warn(s->label() + " task " + std::to_string(*s->task) + " attempt " +
                std::to_string(tasks_.at(*s->task).attempts()) + " passed --timeout " +
                secs(config_.timeout) + ": SIGTERM");
      s->timed_out = true;
      s->state = Slot::State::terminating;
      s->deadline = now + config_.kill_grace;
      s->process->signal(SIGTERM);
    } else if (s->state == Slot::State::terminating && now >= s->deadline) {
      log_.warn(s->label() + " did not exit within --kill-grace: SIGKILL");
      s->process->signal(SIGKILL);
      s->deadline = Clock::time_point::max();
    }
  }
}

void ProcessExecutor::start_workers() {
  if (control_.stopping() || !has_work()) return;
  const auto now = Clock::now();
  tasks_.promote_due(now);
  std::size_t in_flight = busy_slots();
  // Start only the workers the queued tasks need (a 3-topic run at --concurrency 64 starts 3).
  std::size_t idle = 0;
  for (const auto& s : slots_) idle += s->state == Slot::State::idle ? 1 : 0;
  const std::size_t queued = tasks_.ready_count() + tasks_.waiting_count();
  std::size_t wanted = queued > idle ? queued - idle : 0;
  std::size_t started = 0;
  bool more = false;  // the slice ended before every worker wanted was started
  for (auto& s : slots_) {
    if (wanted == 0) break;
    if (Clock::now() - now >= kStartSlice) {
      more = true;
      break;
    }
    if (s->state != Slot::State::down || now < s->available_at) continue;
    --wanted;
    ++s->generation;
    ++started;
    try {
      s->channel = std::make_unique<SupervisorChannel>(
          channel_name(::getuid(), ::getpid(), static_cast<unsigned>(s->index), (instance_ << 32) | s->generation));
      s->process = std::make_unique<WorkerProcess>(launcher_, *s->channel, s->index);
      watch(s->channel->fd(), static_cast<std::uint64_t>(s->index) << 1);
      watch(s->process->pidfd(), (static_cast<std::uint64_t>(s->index) << 1) | 1);
    } catch (const std::exception& e) {
      log_.error(s->label() + " cannot start a worker: " + e.what());
      release_worker(*s);
      note_restart(*s, e.what());
      continue;
    }
    s->channel->try_send(worker_config_message_);
    s->state = Slot::State::idle;
    s->timed_out = false;
    s->retiring = false;
    s->available_at = now;
    // Its first task follows the config at once: with hundreds of workers to start, the first ones
    // work while the last ones are still being forked.
    const auto started_at = Clock::now();
    if (may_dispatch(started_at, in_flight)) dispatch_to(*s, started_at, in_flight);
  }
  if (starting_.count == 0) starting_.began = now;
  starting_.count += started;
  if (more || starting_.count == 0) return;  // with more, the next turn starts the rest
  if (starting_.count > 1) {
    log_.info("started " + std::to_string(starting_.count) + " workers in " +
              std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - starting_.began).count()) +
              " ms");
  }
  starting_ = {};
}

void ProcessExecutor::dispatch() {
  const auto now = Clock::now();
  tasks_.promote_due(now);
  std::size_t in_flight = busy_slots();
  for (auto& s : slots_) {
    if (!may_dispatch(now, in_flight)) return;  // a rate cap: wait_for_events() wakes for it
    if (s->state == Slot::State::idle && now >= s->available_at) dispatch_to(*s, now, in_flight);
  }
}

bool ProcessExecutor::may_dispatch(Clock::time_point now, std::size_t in_flight) const {
  return !control_.stopping() && tasks_.has_ready() && in_flight < static_cast<std::size_t>(limit_.effective()) &&
         rate_.wait(now) <= Clock::duration::zero();
}

void ProcessExecutor::dispatch_to(Slot& s, Clock::time_point now, std::size_t& in_flight) {
  // A channel that closed under us: the exit is reaped next turn, and no attempt is spent on it.
  if (s.channel->status() != ChannelStatus::kOpen) return;
  const TaskIndex i = tasks_.pop_ready();
  const Task& task = tasks_.at(i).start_attempt();
  s.channel->try_send(encode_task(task));
  observer_.attempt_started(task, s.index);
  s.task = i;
  s.reserved = rate_.reserve(now);
  s.state = Slot::State::busy;
  s.deadline = now + config_.timeout;
  ++in_flight;
}

// In the run's last round, once no task is left to start (the source is read out, nothing is ready or
// waiting to retry), an idle worker has nothing more to do: it is stopped at once (its channel closed),
// so that the workers' exits overlap the attempts still running instead of all following the last one.
// A retry that comes up after all starts a worker as usual.
void ProcessExecutor::retire_spare_workers() {
  if (!last_round_ || !tasks_.source_done() || has_work()) return;
  const auto deadline = Clock::now() + kWorkerExitWait;
  for (auto& s : slots_) {
    if (s->state != Slot::State::idle) continue;
    unwatch(s->channel->fd());
    s->channel.reset();
    s->retiring = true;
    s->state = Slot::State::terminating;
    s->deadline = deadline;
  }
}

void ProcessExecutor::wait_for_events() {
  Clock::time_point next = Clock::now() + std::chrono::seconds(1);
  const std::size_t in_flight = busy_slots();
  // A slot's availability matters only when a task could be dispatched to it (else: no busy wait).
  const bool work =
      has_work() && !control_.stopping() && in_flight < static_cast<std::size_t>(limit_.effective());
  std::size_t idle = 0;
  for (const auto& s : slots_) idle += s->state == Slot::State::idle ? 1 : 0;
  // Stopped slots matter only when start_workers() would start one (the same "wanted" rule).
  const bool more_workers_wanted = tasks_.ready_count() + tasks_.waiting_count() > idle;
  std::optional<Clock::time_point> first_idle;  // when the first idle slot may take a task
  for (const auto& s : slots_) {
    if (s->state == Slot::State::busy || s->state == Slot::State::terminating)
      next = std::min(next, s->deadline);
    if (work && s->state == Slot::State::idle && tasks_.has_ready()) {
      next = std::min(next, s->available_at);
      first_idle = std::min(first_idle.value_or(s->available_at), s->available_at);
    }
    if (work && s->state == Slot::State::down && more_workers_wanted) next = std::min(next, s->available_at);
  }
  if (const auto retry = tasks_.next_retry()) next = std::min(next, *retry);
  // A rate cap that holds back a dispatch: wake when it lets the next attempt go, if a slot can take
  // it by then (no cap, or one that does not bind, adds nothing: the slots' times above rule).
  if (first_idle) {
    const auto now = Clock::now();
    if (const auto rate_wait = rate_.wait(now); rate_wait > Clock::duration::zero()) {
      next = std::min(next, std::max(now + rate_wait, *first_idle));
    }
  }
  if (const auto drain = tasks_.drain_deadline()) next = std::min(next, *drain);
  next = std::min(next, Clock::now() + progress_.next_due());
  const auto wait = std::chrono::ceil<milliseconds>(next - Clock::now());
  epoll_event events[64];
  const int n =
      ::epoll_wait(epoll_fd_, events, 64, static_cast<int>(std::max<std::int64_t>(0, wait.count())));
  for (int k = 0; k < n; ++k) {
    const std::uint64_t tag = events[k].data.u64;
    if (tag == kControlTag) {
      control_.drain_wakeups();
      continue;
    }
    Slot& slot = *slots_[static_cast<std::size_t>(tag >> 1)];
    (tag & 1) != 0 ? slot.exited = true : slot.readable = true;
  }
}

void ProcessExecutor::watch(int fd, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl ADD");
  }
}

void ProcessExecutor::unwatch(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void ProcessExecutor::release_worker(Slot& s) {
  if (s.channel) unwatch(s.channel->fd());
  if (s.process) unwatch(s.process->pidfd());
  s.channel.reset();
  s.process.reset();
  s.readable = false;
  s.exited = false;
}

void ProcessExecutor::on_messages(Slot& s) {
  auto received = s.channel->on_readable();
  for (auto& message : received.messages) {
    auto decoded = decode_outcome(message);
    if (!decoded || !s.task || decoded->task_id != tasks_.at(*s.task).task().id ||
        decoded->attempt != tasks_.at(*s.task).attempts()) {
      log_.error(s.label() + " sent an unexpected message" +
                 (decoded ? std::string() : ": " + decoded.error().message) + "; replacing the worker");
      s.retiring = true;
      s.process->signal(SIGKILL);
      return;
    }
    const TaskIndex i = *s.task;
    s.task.reset();
    // A worker being stopped for its timeout delivered just in time: the result counts, but the
    // worker is still on its way out and gets no new task.
    if (s.state != Slot::State::terminating) s.state = Slot::State::idle;
    s.available_at = Clock::now() + config_.delay;
    s.consecutive_failures = 0;
    AttemptOutcome& outcome = decoded->outcome;
    tasks_.at(i).end_attempt(outcome);
    observer_.attempt_ended(tasks_.at(i).task(), outcome, s.index);
    rate_.settle(s.reserved, outcome, Clock::now());
    const int limit_before = limit_.effective();
    if (limit_.on_outcome(outcome, busy_slots())) announce_limit(limit_before, limit_.effective(), outcome.ok());
    tasks_.conclude(i, std::move(outcome), s.index);
  }
  if (received.status == ChannelStatus::kCorrupt && !s.retiring) {
    log_.error(s.label() + " corrupted its channel; replacing the worker");
    s.retiring = true;
    s.process->signal(SIGKILL);
  }
}

void ProcessExecutor::on_worker_exit(Slot& s) {
  const ExitStatus status = *s.process->try_reap();
  // A fork server's death takes all its workers at once: one event, not a crash of each worker (it
  // is logged by the launcher, and a server that cannot be kept up falls back to exec).
  const bool deliberate = s.retiring || s.timed_out || status.with_launcher;
  if (s.task) {
    const TaskIndex i = *s.task;
    s.task.reset();
    AttemptOutcome crashed;
    crashed.error =
        s.timed_out ? worker_error(ErrorKind::timeout, "attempt exceeded --timeout " + secs(config_.timeout) +
                                                           "; worker " + status.describe())
                    : worker_error(ErrorKind::crash, "worker " + std::to_string(s.index) + " (pid " +
                                                         std::to_string(s.process->pid()) + ") " +
                                                         status.describe() + " during the attempt");
    // Its --rpm/--tpm reservation stands: what a killed attempt spent is unknown.
    tasks_.at(i).end_attempt(crashed);
    observer_.attempt_ended(tasks_.at(i).task(), crashed, s.index);
    tasks_.after_failure(i, std::move(crashed), s.index);
  }
  release_worker(s);
  s.state = Slot::State::down;
  if (deliberate || control_.stopping()) {
    s.available_at = Clock::now();
  } else {
    note_restart(s, status.describe());
  }
}

void ProcessExecutor::note_restart(const Slot& slot, const std::string& why) {
  Slot& s = *slots_[static_cast<std::size_t>(slot.index)];
  ++restarts_total_;
  ++s.consecutive_failures;
  observer_.worker_restarted(s.index);
  const auto now = Clock::now();
  s.state = Slot::State::down;
  s.available_at = now + restart_backoff(s.consecutive_failures);
  log_.warn(s.label() + " worker " + why + "; restarting in " +
            secs(restart_backoff(s.consecutive_failures)));
  recent_restarts_.push_back(now);
  while (!recent_restarts_.empty() && recent_restarts_.front() < now - config_.restart_intensity.period) {
    recent_restarts_.pop_front();
  }
  if (static_cast<int>(recent_restarts_.size()) > config_.restart_intensity.max_restarts &&
      !control_.stopping()) {
    ledger_.mark_aborted("workers keep crashing: " + std::to_string(recent_restarts_.size()) +
                         " restarts within " + secs(config_.restart_intensity.period) +
                         " (over --max-restarts " + std::to_string(config_.restart_intensity.max_restarts) +
                         "); last: worker " + why);
    control_.stop_now();
  }
}

void ProcessExecutor::stop_all_now() {
  for (auto& s : slots_) {
    if (!s->process) continue;
    s->retiring = true;
    s->process->kill_and_reap();
    if (s->channel) on_messages(*s);  // a result that made it before the kill still counts
    if (s->task) {
      AttemptOutcome stopped;
      stopped.error = worker_error(ErrorKind::cancelled, "the run was stopped during the attempt");
      observer_.attempt_ended(tasks_.at(*s->task).task(), stopped, s->index);
      tasks_.finish(*s->task,
                  tasks_.at(*s->task).cancel("cancelled: the run was stopped during the attempt", s->index));
      s->task.reset();
    }
    release_worker(*s);
    s->state = Slot::State::down;
  }
}

std::size_t ProcessExecutor::busy_slots() const {
  std::size_t n = 0;
  for (const auto& s : slots_) n += s->state == Slot::State::busy ? 1 : 0;
  return n;
}

bool ProcessExecutor::has_work() const {
  return tasks_.has_ready() || tasks_.waiting_count() > 0;
}

ExecutorGauges ProcessExecutor::gauges() const {
  ExecutorGauges g;
  g.in_flight = busy_slots();
  g.restarts = restarts_total_;
  g.limit = limit_.effective();
  return g;
}

void ProcessExecutor::log_status() {
  log_.info("status: " + progress_.line(gauges()) + ", " + std::to_string(tasks_.ready_count()) + " queued, " +
            std::to_string(tasks_.waiting_count()) + " waiting to retry");
}

}  // namespace cbm
