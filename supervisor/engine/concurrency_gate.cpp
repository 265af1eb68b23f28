#include "concurrency_gate.hpp"

namespace cbm {

ConcurrencyGate::ConcurrencyGate(int ceiling, const RateCaps& caps, int requests_per_attempt,
                                 Clock::time_point now)
    : limit_(ceiling), rate_(caps, requests_per_attempt, now) {}

std::optional<ConcurrencyGate::Permit> ConcurrencyGate::try_acquire(Clock::time_point now) {
  if (in_flight_ >= static_cast<std::size_t>(limit_.effective()) || rate_.wait(now) > Clock::duration::zero()) {
    return std::nullopt;
  }
  ++in_flight_;
  return Permit{rate_.reserve(now)};
}

std::optional<ConcurrencyGate::Clock::time_point> ConcurrencyGate::next_admission(Clock::time_point now) const {
  if (in_flight_ >= static_cast<std::size_t>(limit_.effective())) return std::nullopt;
  return now + rate_.wait(now);
}

std::optional<ConcurrencyGate::LimitChange> ConcurrencyGate::release(const Permit& permit,
                                                                     const AttemptOutcome& outcome,
                                                                     Clock::time_point now) {
  --in_flight_;
  rate_.settle(permit.reserved, outcome, now);
  const int before = limit_.effective();
  if (!limit_.on_outcome(outcome, in_flight_, now)) return std::nullopt;
  return LimitChange{before, limit_.effective()};
}

}  // namespace cbm
