#include "worker_pool.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <system_error>

#include "shm_channel.hpp"
#include "worker_process.hpp"

namespace cbm {
namespace {

using std::chrono::milliseconds;

// epoll tags: slot * 2 for its channel, slot * 2 + 1 for its pidfd; the control eventfd apart.
constexpr std::uint64_t kControlTag = ~std::uint64_t{0};

// Several pools may run at once in one process (the library): each numbers its channels apart.
std::uint64_t next_instance() {
  static std::atomic<std::uint64_t> count{0};
  return count.fetch_add(1) + 1;
}

}  // namespace

struct WorkerPool::Slot {
  enum class State { down, running, stopping };

  std::size_t index = 0;
  std::uint64_t generation = 0;
  State state = State::down;
  std::unique_ptr<SupervisorChannel> channel;
  std::unique_ptr<WorkerProcess> process;
  Clock::time_point restart_at{};  // down: not before (backoff)
  int consecutive_deaths = 0;
  bool readable = false;  // epoll: the channel has something (messages, EOF)
  bool exited = false;    // epoll: the pidfd says the process ended

  std::string label() const { return "[w" + std::to_string(index) + "." + std::to_string(generation) + "]"; }
};

WorkerPool::WorkerPool(const RunConfig& config, std::size_t processes, std::string hello, RunControl& control,
                       Logger& log, RunClock& clock)
    : config_(config),
      hello_(std::move(hello)),
      control_(control),
      log_(log),
      clock_(clock),
      launcher_(config.worker_executable, config.client.api_key, log),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      instance_(next_instance()),
      governor_(config.restart_intensity) {
  if (epoll_.get() < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  if (::access(config.worker_executable.c_str(), X_OK) != 0) {
    throw std::runtime_error("worker executable not found or not executable: '" + config.worker_executable.string() +
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
  watch(control_.wake_fd(), kControlTag);
  for (std::size_t i = 0; i < processes; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->index = i;
  }
}

WorkerPool::~WorkerPool() {
  // Closing a channel is the worker's signal to exit; give them all a moment together, then kill.
  for (auto& s : slots_) s->channel.reset();
  const auto deadline = Clock::now() + kExitWait;
  for (auto& s : slots_) {
    if (!s->process) continue;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (!s->process->reap_within(std::max(left, milliseconds::zero()))) s->process->kill_and_reap();
    s->process.reset();
  }
}

bool WorkerPool::running(std::size_t slot) const { return slots_[slot]->state == Slot::State::running; }

bool WorkerPool::can_start(std::size_t slot) {
  const Slot& s = *slots_[slot];
  if (s.state == Slot::State::running) return s.channel->status() == ChannelStatus::kOpen;
  if (s.state == Slot::State::stopping) return false;  // its exit wakes wait()
  const auto now = clock_.now();
  if (now < s.restart_at) {
    start_wake_ = std::min(start_wake_.value_or(s.restart_at), s.restart_at);
    return false;
  }
  if (slice_began_ && now - *slice_began_ >= kStartSlice) {
    start_wake_ = now;
    return false;
  }
  return true;
}

bool WorkerPool::ensure_running(std::size_t slot) {
  Slot& s = *slots_[slot];
  if (s.state == Slot::State::running) return true;
  if (!slice_began_) slice_began_ = clock_.now();
  ++s.generation;
  try {
    ChannelOptions options;
    options.ring_capacity = kRingCapacity;
    s.channel = std::make_unique<SupervisorChannel>(
        channel_name(::getuid(), ::getpid(), static_cast<unsigned>(s.index), (instance_ << 32) | s.generation),
        options);
    s.process = std::make_unique<WorkerProcess>(launcher_, *s.channel, static_cast<int>(s.index));
    watch(s.channel->fd(), static_cast<std::uint64_t>(s.index) << 1);
    watch(s.process->pidfd(), (static_cast<std::uint64_t>(s.index) << 1) | 1);
  } catch (const std::exception& e) {
    log_.error(s.label() + " cannot start a worker: " + e.what());
    release(s);
    ++restarts_;
    ++s.consecutive_deaths;
    s.restart_at = clock_.now() + RestartGovernor::backoff(s.consecutive_deaths);
    if (auto reason = governor_.on_death(clock_.now()); reason && !gave_up_) {
      gave_up_ = *reason + "; last: " + e.what();
    }
    return false;
  }
  s.state = Slot::State::running;
  s.channel->try_send(hello_);
  return true;
}

void WorkerPool::send(std::size_t slot, std::string message) { slots_[slot]->channel->try_send(std::move(message)); }

void WorkerPool::note_progress(std::size_t slot) {
  slots_[slot]->consecutive_deaths = 0;
  governor_.on_progress(clock_.now());
}

void WorkerPool::terminate(std::size_t slot) {
  Slot& s = *slots_[slot];
  if (!s.process || s.state == Slot::State::stopping) return;
  s.state = Slot::State::stopping;
  s.process->signal(SIGTERM);
  kill_timers_.set(clock_.now() + config_.kill_grace, KillTimer{slot, s.generation});
}

void WorkerPool::replace(std::size_t slot) {
  Slot& s = *slots_[slot];
  if (!s.process) return;
  s.state = Slot::State::stopping;
  s.process->signal(SIGKILL);
}

void WorkerPool::retire(std::size_t slot) {
  Slot& s = *slots_[slot];
  if (s.state != Slot::State::running) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s.channel->fd(), nullptr);
  s.channel.reset();
  s.state = Slot::State::stopping;
  kill_timers_.set(clock_.now() + kExitWait, KillTimer{slot, s.generation});
}

void WorkerPool::kill(std::size_t slot, Events& events) {
  Slot& s = *slots_[slot];
  if (!s.process) return;
  s.state = Slot::State::stopping;
  s.process->kill_and_reap();
  on_exit(s, events);
}

void WorkerPool::wait(Clock::time_point until, Events& events) {
  const auto now = clock_.now();
  if (start_wake_) until = std::min(until, *start_wake_);
  if (const auto kill_at = kill_timers_.next()) until = std::min(until, *kill_at);
  start_wake_.reset();
  slice_began_.reset();
  const auto timeout = std::max(milliseconds::zero(), std::chrono::ceil<milliseconds>(until - now));
  epoll_event ready[64];
  const int n = ::epoll_wait(epoll_.get(), ready, 64, static_cast<int>(std::min<std::int64_t>(timeout.count(), 1 << 30)));
  for (int k = 0; k < n; ++k) {
    const std::uint64_t tag = ready[k].data.u64;
    if (tag == kControlTag) {
      control_.drain_wakeups();
      continue;
    }
    Slot& s = *slots_[static_cast<std::size_t>(tag >> 1)];
    ((tag & 1) != 0 ? s.exited : s.readable) = true;
  }
  reap(events);
  fire_kill_timers();
}

// Results first, from every worker that sent one: they must not wait behind other workers' exits (at
// the end of a run, hundreds of workers stop while the last results come in). Then the exits, each
// after its worker's last messages.
void WorkerPool::reap(Events& events) {
  for (auto& s : slots_) {
    if (s->readable && s->channel) read_messages(*s, events);
    s->readable = false;
  }
  for (auto& s : slots_) {
    if (s->exited && s->process && s->process->try_reap()) on_exit(*s, events);
    s->exited = false;
  }
}

void WorkerPool::read_messages(Slot& s, Events& events) {
  auto received = s.channel->on_readable();
  for (auto& message : received.messages) events.worker_message(s.index, std::move(message));
  if (received.status == ChannelStatus::kCorrupt && s.state == Slot::State::running) {
    log_.error(s.label() + " corrupted its channel; replacing the worker");
    replace(s.index);
  }
}

void WorkerPool::on_exit(Slot& s, Events& events) {
  if (s.channel) read_messages(s, events);  // sent just before the exit: a finished result is never lost
  const ExitStatus status = *s.process->try_reap();
  // A fork server's death takes all its workers at once: one event, not a crash of each worker (the
  // launcher logs it, and a server that cannot be kept up falls back to exec).
  const bool deliberate = s.state == Slot::State::stopping || status.with_launcher;
  const std::string how = "worker " + std::to_string(s.index) + " (pid " + std::to_string(s.process->pid()) + ") " +
                          status.describe();
  release(s);
  s.state = Slot::State::down;
  s.restart_at = clock_.now();
  // During a drain the service still runs its accepted work: a death then counts as any other.
  const bool restarting = !deliberate && control_.level() != StopLevel::now;
  if (restarting) {
    ++restarts_;
    ++s.consecutive_deaths;
    const auto backoff = RestartGovernor::backoff(s.consecutive_deaths);
    s.restart_at += backoff;
    log_.warn(s.label() + " " + how + "; restarting in " + seconds_text(backoff));
    if (auto reason = governor_.on_death(clock_.now()); reason && !gave_up_) gave_up_ = *reason + "; last: " + how;
  }
  events.worker_exited(s.index, how, restarting);
}

void WorkerPool::fire_kill_timers() {
  while (auto timer = kill_timers_.pop_due(clock_.now())) {
    Slot& s = *slots_[timer->slot];
    if (s.generation != timer->generation || s.state != Slot::State::stopping || !s.process) continue;
    log_.warn(s.label() + " did not exit in time: SIGKILL");
    s.process->signal(SIGKILL);
  }
}

void WorkerPool::watch(int fd, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl ADD");
  }
}

void WorkerPool::release(Slot& s) {
  if (s.channel) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s.channel->fd(), nullptr);
  if (s.process) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s.process->pidfd(), nullptr);
  s.channel.reset();
  s.process.reset();
  s.readable = false;
  s.exited = false;
}

}  // namespace cbm
