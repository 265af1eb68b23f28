// RunClock: where the engine, the admission gate and the worker pool read the time (LevelDB's Env,
// for time only). The product reads the steady clock through RunClock::steady(); the engine's unit
// tests pass a clock they move by hand, so retries, drain, abort and restart intensity are tested
// without a single real wait.
#pragma once

#include <chrono>

namespace cbm {

class RunClock {
 public:
  using Clock = std::chrono::steady_clock;

  virtual ~RunClock() = default;
  virtual Clock::time_point now() const = 0;

  // The process's steady clock.
  static RunClock& steady();
};

}  // namespace cbm
