// AdaptiveLimit: how many tasks may be in flight, adapted to the platform's answers (AIMD, as TCP
// congestion control). A 1302 (too many requests in flight for the account) or 1305 (model
// overloaded) says the attempts still in flight are all the platform takes: the limit drops to that
// count at once (rejections come back instantly, so a higher limit would only recycle them), and, at
// most once per round trip (the smoothed latency of successful attempts), to 0.7 of it as well
// (CUBIC's factor: the platform's limit may move). Every success while the limit is binding adds
// 1/limit: about one more task per round trip of a full window. A limit that is not
// reached is not raised (it would grow untested). Never below 1, never above --concurrency.
// Not thread-safe.
#pragma once

#include <chrono>

#include "api_error.hpp"
#include "task.hpp"

namespace cbm {

class AdaptiveLimit {
 public:
  using Clock = std::chrono::steady_clock;

  explicit AdaptiveLimit(int ceiling);

  // Feed every attempt's outcome; returns true when the effective limit changed. `in_flight` counts
  // the attempts still running besides this one.
  bool on_success(std::chrono::milliseconds latency, std::size_t in_flight);
  bool on_error(const ApiError& error, std::size_t in_flight, Clock::time_point now);
  // Either of the above, for an attempt's outcome (its latency: the sum of its steps').
  bool on_outcome(const AttemptOutcome& outcome, std::size_t in_flight, Clock::time_point now);

  int effective() const { return static_cast<int>(limit_); }
  int ceiling() const { return ceiling_; }

  // The platform's "slow down" answers.
  static bool is_overload(const ApiError& error);

  // The rule's numbers (a fleet's shared limit applies the same rule: fleet/fleet_semaphore.cpp).
  static constexpr double kCutFactor = 0.7;      // CUBIC's: at most once per round trip
  static constexpr double kLatencyWeight = 0.2;  // of each success in the smoothed round trip

 private:
  const int ceiling_;
  double limit_;
  double round_trip_ms_ = 100.0;  // smoothed latency of successful attempts
  Clock::time_point last_cut_{};
};

}  // namespace cbm
