// TokenBucket: a cap of `per_minute` units a minute, refilled continuously, with no burst. It is a
// bucket of zero capacity that may run into debt: a take is allowed whenever there is no debt, costs
// what it costs (any amount), and the next take waits until the debt is repaid at the cap's rate. So
// any window of length W lets through at most per_minute * W / 1 min plus one take: the first minute
// included (the bucket starts empty, not full), and after an idle spell (nothing is saved up).
// Costs known only afterwards (tokens) are reserved as an estimate and corrected with adjust().
// Pure: time is passed in (tests drive it with a made-up clock). Not thread-safe.
#pragma once

#include <chrono>

namespace cbm {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // `per_minute` > 0.
  TokenBucket(double per_minute, Clock::time_point now);

  // How long until a take is allowed; zero when it is now.
  Clock::duration wait(Clock::time_point now) const;
  // Takes `cost` units (precondition: wait(now) is zero).
  void take(double cost, Clock::time_point now);
  // Corrects an earlier take by `delta` units: more used than taken deepens the debt, less repays it
  // (but never beyond zero debt: a refund does not become a burst).
  void adjust(double delta, Clock::time_point now);
  // Units owed at `now` (0 when a take is allowed).
  double debt(Clock::time_point now) const;

 private:
  const double per_second_;
  double debt_ = 0.0;  // as of updated_
  Clock::time_point updated_;
};

}  // namespace cbm
