#include "thread_executor.hpp"

#include <atomic>
#include <optional>
#include <random>
#include <thread>

#include "bigmodel_client.hpp"
#include "pipeline.hpp"
#include "task_progress.hpp"

namespace cbm {

ThreadExecutor::ThreadExecutor(const RunConfig& config, RunLedger& ledger, RunControl& control, Logger& log)
    : config_(config), ledger_(ledger), control_(control), log_(log) {}

void ThreadExecutor::run_round(std::uint32_t round, const std::vector<std::string>& topics) {
  std::atomic<std::size_t> next{0};

  auto worker = [&](int slot) {
    ClientConfig client_config = config_.client;
    client_config.http.abort = &control_.abort_flag();
    BigModelClient client(client_config);
    Pipeline pipeline(config_.pipeline, client);
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    bool first = true;

    while (!control_.stopping()) {
      const std::size_t i = next.fetch_add(1);
      if (i >= topics.size()) return;
      // The task at i stays unrecorded when a stop ends the pause: the round's sweep cancels it.
      if (!first && config_.delay.count() > 0 && control_.wait_for(config_.delay)) return;
      first = false;
      TaskProgress progress(Task{i, round, topics[i], 0});
      for (;;) {
        const Task& task = progress.start_attempt();
        AttemptOutcome outcome = pipeline.run(task, Clock::now() + config_.timeout);
        progress.end_attempt(outcome);
        if (outcome.ok()) {
          ledger_.record(progress.finish(TaskStatus::succeeded, std::move(outcome), slot));
          break;
        }
        const ApiError& err = *outcome.error;
        log_.warn("[t" + std::to_string(slot) + "] task " + std::to_string(i) + " attempt " +
                  std::to_string(task.attempt) + " failed (" + std::string(to_string(err.error_class)) +
                  "): " + err.describe());
        if (err.kind == ErrorKind::cancelled) {
          ledger_.record(progress.cancel("cancelled by an immediate stop", slot));
          break;
        }
        const RetryDecision decision = decide_retry(config_.retry, err, task.attempt, jitter(rng));
        if (std::holds_alternative<AbortRun>(decision)) {
          ledger_.mark_aborted("run-fatal API error: " + err.describe());
          ledger_.record(progress.finish(TaskStatus::failed, std::move(outcome), slot));
          control_.stop_now();
          break;
        }
        if (std::holds_alternative<FailTask>(decision)) {
          ledger_.record(progress.finish(TaskStatus::failed, std::move(outcome), slot));
          break;
        }
        if (control_.wait_for(std::get<RetryAfter>(decision).delay)) {
          ledger_.record(progress.cancel("the run stopped while the task waited to retry", slot));
          break;
        }
      }
    }
  };

  const int n = std::min<int>(config_.concurrency, static_cast<int>(topics.size()));
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
    const auto wait = drain_deadline ? std::max(Clock::duration::zero(), *drain_deadline - Clock::now())
                                     : Clock::duration(std::chrono::seconds(1));
    control_.wait_until_woken(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
  }
  threads.clear();

  // Tasks never started (a stop or an abort came first) still get their terminal record.
  for (std::size_t i = 0; i < topics.size(); ++i) {
    if (ledger_.has(round, i)) continue;
    const std::string why = ledger_.abort_reason() ? "not run: the run was aborted" : "not run: the run was stopped";
    ledger_.record(TaskProgress(Task{i, round, topics[i], 0}).cancel(why, -1));
  }
}

}  // namespace cbm
