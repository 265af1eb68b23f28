// ConcurrencyGate: whether a task attempt may start now — the engine asks it before every start, in
// every mode. It holds the adaptive in-flight limit (AdaptiveLimit) and the --rpm/--tpm caps
// (RateLimit), and counts the attempts in flight; with a SharedAdmission (a fleet's limit per API
// key, shared_admission.hpp) an attempt also needs its lease, asked for last. When it refuses,
// next_admission() says when to ask again. Every permit granted is given back exactly once with
// release(). Time is passed in (the engine's RunClock). Not thread-safe: the engine's loop is its
// only user.
#pragma once

#include <cstddef>
#include <optional>

#include "adaptive_limit.hpp"
#include "rate_limit.hpp"
#include "shared_admission.hpp"

namespace cbm {

class ConcurrencyGate {
 public:
  using Clock = std::chrono::steady_clock;

  struct Permit {
    RateLimit::Reservation reserved;
    std::optional<SharedAdmission::LeaseId> lease;  // the shared limit's, when there is one
  };
  struct LimitChange {
    int from = 0;
    int to = 0;
  };

  // `shared` (may be null: none) must outlive the gate.
  ConcurrencyGate(int ceiling, const RateCaps& caps, int requests_per_attempt, Clock::time_point now,
                  SharedAdmission* shared = nullptr);

  // A permit if an attempt may start at `now`.
  std::optional<Permit> try_acquire(Clock::time_point now);
  // When try_acquire() may succeed: `now`, the time a rate cap allows or the shared limit's next try;
  // nullopt while the local in-flight limit binds (the next release() is what frees a place).
  std::optional<Clock::time_point> next_admission(Clock::time_point now) const;
  // The attempt holding `permit` ended at `now` with `outcome`: feeds the adaptive limit and corrects
  // the rate caps with what the attempt really spent. Returns the limit's move, if it moved.
  std::optional<LimitChange> release(const Permit& permit, const AttemptOutcome& outcome, Clock::time_point now);

  // Keeps the shared leases of running attempts alive; returns when to call it again (max(): never).
  Clock::time_point maintain(Clock::time_point now);

  int limit() const { return limit_.effective(); }
  std::size_t in_flight() const { return in_flight_; }

 private:
  AdaptiveLimit limit_;
  RateLimit rate_;
  SharedAdmission* shared_;
  std::optional<Clock::time_point> shared_retry_;  // the shared limit refused: ask again then
  std::size_t in_flight_ = 0;
};

}  // namespace cbm
