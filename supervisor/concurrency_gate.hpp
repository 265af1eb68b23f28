// ConcurrencyGate: who may start a task attempt now, for executors whose attempts start on several
// threads (threading) or on one event loop (asyncio). It holds the adaptive in-flight limit
// (AdaptiveLimit) and the --rpm/--tpm caps (RateLimit) behind one mutex, and counts the attempts in
// flight. A thread blocks in acquire() on a condition variable: untimed while the in-flight limit
// binds (a release() wakes it), timed while only a rate cap does; close() wakes every waiter for good.
// A loop that must not block calls try_acquire() and, when refused, next_admission() to know when to
// try again. Every permit granted is given back exactly once with release().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>

#include "adaptive_limit.hpp"
#include "rate_limit.hpp"

namespace cbm {

class ConcurrencyGate {
 public:
  using Clock = std::chrono::steady_clock;

  struct Permit {
    RateLimit::Reservation reserved;
  };
  struct LimitChange {
    int from = 0;
    int to = 0;
  };

  ConcurrencyGate(int ceiling, const RateCaps& caps, int requests_per_attempt);

  // Blocks until an attempt may start (and takes its place), or until close(); nullopt when closed.
  std::optional<Permit> acquire();
  // A permit if an attempt may start at `now`; never blocks.
  std::optional<Permit> try_acquire(Clock::time_point now);
  // When try_acquire() may succeed: `now` or the time a rate cap allows; nullopt while the in-flight
  // limit binds (the next release() is what frees a place).
  std::optional<Clock::time_point> next_admission(Clock::time_point now) const;
  // The attempt holding `permit` ended with `outcome`: feeds the adaptive limit and corrects the rate
  // caps with what the attempt really spent. Returns the limit's move, if it moved.
  std::optional<LimitChange> release(const Permit& permit, const AttemptOutcome& outcome);
  // Refuses every later acquire() and wakes the waiting ones (the run is stopping).
  void close();

  int limit() const;
  std::size_t in_flight() const;

 private:
  bool admissible(Clock::time_point now) const;  // with mu_ held
  Permit admit(Clock::time_point now);           // with mu_ held

  mutable std::mutex mu_;
  std::condition_variable cv_;
  AdaptiveLimit limit_;
  RateLimit rate_;
  std::size_t in_flight_ = 0;
  bool closed_ = false;
};

}  // namespace cbm
