#include "concurrency_gate.hpp"

namespace cbm {

ConcurrencyGate::ConcurrencyGate(int ceiling, const RateCaps& caps, int requests_per_attempt,
                                 Clock::time_point now, SharedAdmission* shared)
    : limit_(ceiling), rate_(caps, requests_per_attempt, now), shared_(shared) {}

std::optional<ConcurrencyGate::Permit> ConcurrencyGate::try_acquire(Clock::time_point now) {
  if (in_flight_ >= static_cast<std::size_t>(limit_.effective()) || rate_.wait(now) > Clock::duration::zero()) {
    return std::nullopt;
  }
  // The shared limit last: its answer costs a round trip, and a lease taken must be used.
  std::optional<SharedAdmission::LeaseId> lease;
  if (shared_ != nullptr) {
    if (shared_retry_ && now < *shared_retry_) return std::nullopt;
    lease = shared_->try_acquire(now, rate_.estimate());
    if (!lease) {
      shared_retry_ = shared_->retry_at(now);
      return std::nullopt;
    }
    shared_retry_.reset();
  }
  ++in_flight_;
  return Permit{rate_.reserve(now), lease};
}

std::optional<ConcurrencyGate::Clock::time_point> ConcurrencyGate::next_admission(Clock::time_point now) const {
  if (in_flight_ >= static_cast<std::size_t>(limit_.effective())) return std::nullopt;
  auto at = now + rate_.wait(now);
  if (shared_retry_ && *shared_retry_ > at) at = *shared_retry_;
  return at;
}

std::optional<ConcurrencyGate::LimitChange> ConcurrencyGate::release(const Permit& permit,
                                                                     const AttemptOutcome& outcome,
                                                                     Clock::time_point now) {
  --in_flight_;
  if (permit.lease && shared_ != nullptr) {
    shared_->release(*permit.lease, outcome, now);
    shared_retry_.reset();  // our own release freed a place
  }
  rate_.settle(permit.reserved, outcome, now);
  const int before = limit_.effective();
  if (!limit_.on_outcome(outcome, in_flight_, now)) return std::nullopt;
  return LimitChange{before, limit_.effective()};
}

ConcurrencyGate::Clock::time_point ConcurrencyGate::maintain(Clock::time_point now) {
  return shared_ != nullptr ? shared_->maintain(now) : Clock::time_point::max();
}

}  // namespace cbm
