// RestartGovernor: the pool's judgement on worker deaths (Erlang/OTP's restart intensity, made
// progress-aware). A worker that dies on its own is restarted after a backoff that doubles with its
// slot's consecutive deaths (50 ms .. 5 s; a slot's first answer resets it). The pool gives up — the
// run aborts, exit 3 — only when more than --max-restarts deaths fall within --restart-period AND no
// worker answered within that period: a broken worker program or a crash loop at start-up. Workers
// killed from outside while work keeps finishing (the OOM killer, an operator) are restarted without
// limit. Pure: time is passed in.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>

#include "run_config.hpp"

namespace cbm {

class RestartGovernor {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RestartGovernor(RestartIntensity limits) : limits_(limits) {}

  // A worker died on its own at `now`. Returns why the pool must give up, or nullopt to restart it.
  std::optional<std::string> on_death(Clock::time_point now);
  // A worker answered (a result came back) at `now`: the pool is making progress.
  void on_progress(Clock::time_point now) { last_progress_ = now; }

  // How long a slot waits before its next start after `consecutive_deaths` deaths in a row.
  static Clock::duration backoff(int consecutive_deaths);

 private:
  const RestartIntensity limits_;
  std::deque<Clock::time_point> recent_;  // deaths within the period
  std::optional<Clock::time_point> last_progress_;
};

}  // namespace cbm
