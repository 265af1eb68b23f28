// SharedAdmission: one more admission condition, shared with other processes — a fleet's limits per
// API key (docs/fleet.md, "Fleet-wide limits"). The ConcurrencyGate asks it after its own rules
// (the local adaptive limit, --rpm, --tpm) let an attempt start; the attempt starts only holding a
// lease from it, keeps the lease alive while it runs (maintain()) and gives it back when it ends. The
// engine knows nothing of what implements it (for a fleet node: a Redis semaphore, shared rate caps,
// or both through AllAdmissions).
// Called from the engine's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "logger.hpp"
#include "rate_limit.hpp"
#include "task.hpp"

namespace cbm {

class SharedAdmission {
 public:
  using Clock = std::chrono::steady_clock;
  using LeaseId = std::uint64_t;

  virtual ~SharedAdmission() = default;

  // The run's log, where it reports (an unreachable store, lost leases); the engine gives it before
  // any other call, and it outlives every call.
  virtual void bind_log(Logger& log) = 0;

  // A lease if one more attempt, expected to cost `estimate` (RateLimit::estimate(): the local rule's
  // requests and tokens), may start now across everything that shares the limit; nullopt if not
  // (retry_at() then says when to ask again). Never throws: an unreachable store refuses.
  virtual std::optional<LeaseId> try_acquire(Clock::time_point now, const RateLimit::Reservation& estimate) = 0;
  // After a refusal: when asking again may succeed (the others' releases are not announced).
  virtual Clock::time_point retry_at(Clock::time_point now) const = 0;
  // The attempt holding `lease` ended with `outcome` (which may feed a shared limit, and says what it
  // spent: RateLimit::spent()). Idempotent.
  virtual void release(LeaseId lease, const AttemptOutcome& outcome, Clock::time_point now) = 0;
  // The attempt holding `lease` never started (another condition refused it): gives back everything the
  // lease took, feeding nothing. Idempotent.
  virtual void cancel(LeaseId lease, Clock::time_point now) = 0;
  // Keeps the held leases alive; returns when it wants to be called again.
  virtual Clock::time_point maintain(Clock::time_point now) = 0;
};

}  // namespace cbm
