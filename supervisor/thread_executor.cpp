#include "thread_executor.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "bigmodel_client.hpp"
#include "concurrency_gate.hpp"
#include "pipeline.hpp"
#include "round_tasks.hpp"
#include "task_progress.hpp"

namespace cbm {

ThreadExecutor::ThreadExecutor(const ExecutorContext& run)
    : RoundExecutor(run),
      gate_(run.config.concurrency, run.config.rate, run.config.pipeline.search ? 2 : 1) {}

std::size_t ThreadExecutor::run_round(std::uint32_t round, TopicSource& topics) {
  std::mutex source_mu;
  std::size_t planned = 0;
  // The next topic not finished yet (--resume skips finished ones); nullopt at the end. An open
  // source with nothing now is waited for, until it has topics, closes, or the run stops.
  std::exception_ptr source_error;  // a source that throws (e.g. --resume on changed input) ends the round
  auto next_task = [&]() -> std::optional<Task> {
    for (;;) {
      const std::uint64_t seen = control_.notifications();
      {
        std::lock_guard lock(source_mu);
        if (source_error) return std::nullopt;
        try {
          const bool open = topics.open();
          while (auto t = topics.next()) {
            ++planned;
            if (!ledger_.has(round, t->id)) return Task{t->id, round, std::move(t->topic), 0};
          }
          if (!open || control_.stopping()) return std::nullopt;
        } catch (...) {
          source_error = std::current_exception();
          control_.stop_now();
          return std::nullopt;
        }
      }
      control_.wait_for_notification(seen);
    }
  };

  auto gauges = [&] {
    ExecutorGauges g;
    g.in_flight = gate_.in_flight();
    g.limit = gate_.limit();
    return g;
  };

  auto worker = [&](int slot) {
    ClientConfig client_config = config_.client;
    client_config.http.abort = &control_.abort_flag();
    BigModelClient client(client_config);
    Pipeline pipeline(config_.pipeline, client);
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    bool first = true;

    while (!control_.stopping()) {
      // A stop during the pause leaves the rest to the round's sweep, which cancels them.
      if (!first && config_.delay.count() > 0 && control_.wait_for(config_.delay)) return;
      first = false;
      auto next = next_task();
      if (!next) return;
      TaskProgress progress(std::move(*next));
      for (;;) {
        const auto permit = gate_.acquire();
        if (!permit) {
          ledger_.record(progress.cancel("cancelled: the run stopped before the attempt could start",
                                         progress.attempts() > 0 ? slot : -1));
          break;
        }
        const Task& task = progress.start_attempt();
        observer_.attempt_started(task, slot);
        AttemptOutcome outcome = pipeline.run(task, Clock::now() + config_.timeout);
        {
          std::lock_guard lock(limit_mu_);
          if (const auto limit_change = gate_.release(*permit, outcome)) {
            announce_limit(limit_change->from, limit_change->to, outcome.ok());
          }
        }
        progress.end_attempt(outcome);
        observer_.attempt_ended(task, outcome, slot);
        if (outcome.ok()) {
          ledger_.record(progress.finish(TaskStatus::succeeded, std::move(outcome), slot));
          break;
        }
        auto verdict = judge_failure(config_.retry, ledger_, control_, log_, "t", slot, progress, std::move(outcome),
                                     jitter(rng));
        if (auto* record = std::get_if<TaskResult>(&verdict)) {
          ledger_.record(std::move(*record));
          break;
        }
        if (control_.wait_for(std::get<Clock::duration>(verdict))) {
          ledger_.record(progress.cancel("the run stopped while the task waited to retry", slot));
          break;
        }
      }
    }
  };

  const int n = config_.concurrency;
  std::atomic<int> running{n};
  std::vector<std::jthread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int slot = 0; slot < n; ++slot) {
    threads.emplace_back([&, slot] {
      worker(slot);
      running.fetch_sub(1);
      control_.notify();
    });
  }
  // A drain lets in-flight tasks finish, but not past the grace: then transfers are aborted.
  std::optional<Clock::time_point> drain_deadline;
  while (running.load() > 0) {
    if (control_.level() == StopLevel::drain && !drain_deadline) {
      drain_deadline = Clock::now() + config_.drain_grace;
      log_.info("draining: waiting up to " + std::to_string(config_.drain_grace.count()) + " ms for in-flight tasks");
    }
    if (drain_deadline && Clock::now() >= *drain_deadline && control_.level() == StopLevel::drain) {
      log_.warn("drain grace over: aborting in-flight tasks");
      control_.stop_now();
    }
    if (control_.take_status()) log_.info("status: " + progress_.line(gauges()));
    if (ledger_.abort_reason() && !control_.stopping()) control_.stop_now();
    // Threads waiting for a place wake now, and no attempt starts after a stop.
    if (control_.stopping()) gate_.close();
    progress_.tick(gauges());
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(progress_.next_due());
    if (drain_deadline) {
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(
                                std::max(Clock::duration::zero(), *drain_deadline - Clock::now())));
    }
    control_.wait_until_woken(wait);
  }
  threads.clear();
  if (source_error) std::rethrow_exception(source_error);

  // Topics never started (a stop or an abort came first) still get their terminal record.
  const std::string why = ledger_.abort_reason() ? "not run: the run was aborted" : "not run: the run was stopped";
  while (auto t = next_task()) ledger_.record(TaskProgress(std::move(*t)).cancel(why, -1));
  return planned;
}

}  // namespace cbm
