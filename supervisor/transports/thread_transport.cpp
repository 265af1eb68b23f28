#include "thread_transport.hpp"

#include <algorithm>

#include "bigmodel_client.hpp"
#include "pipeline.hpp"

namespace cbm {

ThreadTransport::ThreadTransport(const RunConfig& config, RunControl& control)
    : config_(config), control_(control) {
  const auto n = static_cast<std::size_t>(config.concurrency);
  slots_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) slots_.push_back(std::make_unique<Slot>());
  try {
    for (std::size_t i = 0; i < n; ++i) slots_[i]->thread = std::jthread([this, i] { run(i); });
  } catch (...) {
    stop_threads();  // a thread that cannot start (a pids limit): the ones started must not wait forever
    throw;
  }
}

ThreadTransport::~ThreadTransport() { stop_threads(); }

void ThreadTransport::stop_threads() {
  for (auto& s : slots_) {
    s->abort.store(true);
    std::lock_guard lock(s->mu);
    s->closing = true;
    s->cv.notify_one();
  }
  for (auto& s : slots_) s->thread = {};  // joins
}

void ThreadTransport::run(std::size_t slot) {
  Slot& s = *slots_[slot];
  ClientConfig client_config = config_.client;
  client_config.http.abort = &s.abort;
  BigModelClient client(client_config);
  Pipeline pipeline(config_.pipeline, client);
  for (;;) {
    Job job;
    {
      std::unique_lock lock(s.mu);
      s.cv.wait(lock, [&] { return s.job.has_value() || s.closing; });
      if (!s.job) return;
      job = std::move(*s.job);
      s.job.reset();
    }
    AttemptOutcome outcome = pipeline.run(job.task, job.deadline);
    bool was_empty = false;
    {
      std::lock_guard lock(ended_mu_);
      was_empty = ended_.empty();
      ended_.add(slot, std::move(outcome));
    }
    // The loop takes every outcome at once: one wake-up for a batch is enough.
    if (was_empty) control_.wake();
  }
}

void ThreadTransport::start(std::size_t slot, const Task& task, Clock::time_point deadline) {
  Slot& s = *slots_[slot];
  s.abort.store(false);
  std::lock_guard lock(s.mu);
  s.job = Job{task, deadline};
  s.cv.notify_one();
}

void ThreadTransport::cancel(std::size_t slot, CancelCause /*cause*/) { slots_[slot]->abort.store(true); }

void ThreadTransport::wait(Clock::time_point until, AttemptSink& sink) {
  bool pending = false;
  {
    std::lock_guard lock(ended_mu_);
    pending = !ended_.empty();
  }
  if (!pending) {
    const auto now = Clock::now();
    control_.wait_until_woken(
        std::max(std::chrono::milliseconds::zero(), std::chrono::ceil<std::chrono::milliseconds>(until - now)));
  }
  {
    std::lock_guard lock(ended_mu_);
    delivering_.swap(ended_);
  }
  delivering_.deliver(sink);
}

}  // namespace cbm
