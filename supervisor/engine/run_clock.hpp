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
  // The wall clock, for times the platform names (a usage cap's reset). The product's is the system
  // clock; a test's moves with its steady time.
  virtual std::chrono::system_clock::time_point wall_now() const { return std::chrono::system_clock::now(); }

  // The process's steady clock.
  static RunClock& steady();
};

}  // namespace cbm
