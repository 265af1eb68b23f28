#include "concurrency_gate.hpp"

namespace cbm {

ConcurrencyGate::ConcurrencyGate(int ceiling, const RateCaps& caps, int requests_per_attempt)
    : limit_(ceiling), rate_(caps, requests_per_attempt, Clock::now()) {}

bool ConcurrencyGate::admissible(Clock::time_point now) const {
  return !closed_ && in_flight_ < static_cast<std::size_t>(limit_.effective()) &&
         rate_.wait(now) == Clock::duration::zero();
}

ConcurrencyGate::Permit ConcurrencyGate::admit(Clock::time_point now) {
  ++in_flight_;
  return Permit{rate_.reserve(now)};
}

std::optional<ConcurrencyGate::Permit> ConcurrencyGate::acquire() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (closed_) return std::nullopt;
    const auto now = Clock::now();
    if (admissible(now)) return admit(now);
    if (in_flight_ >= static_cast<std::size_t>(limit_.effective())) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, now + rate_.wait(now));
    }
  }
}

std::optional<ConcurrencyGate::Permit> ConcurrencyGate::try_acquire(Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (!admissible(now)) return std::nullopt;
  return admit(now);
}

std::optional<ConcurrencyGate::Clock::time_point> ConcurrencyGate::next_admission(
    Clock::time_point now) const {
  std::lock_guard lock(mu_);
  if (in_flight_ >= static_cast<std::size_t>(limit_.effective())) return std::nullopt;
  return now + rate_.wait(now);
}

std::optional<ConcurrencyGate::LimitChange> ConcurrencyGate::release(const Permit& permit,
                                                                     const AttemptOutcome& outcome) {
  std::optional<LimitChange> change;
  {
    std::lock_guard lock(mu_);
    --in_flight_;
    rate_.settle(permit.reserved, outcome, Clock::now());
    const int before = limit_.effective();
    if (limit_.on_outcome(outcome, in_flight_)) change = LimitChange{before, limit_.effective()};
  }
  // A place freed, the limit may have grown, a refund may have shortened a rate wait: any waiter may go.
  cv_.notify_all();
  return change;
}

void ConcurrencyGate::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

int ConcurrencyGate::limit() const {
  std::lock_guard lock(mu_);
  return limit_.effective();
}

std::size_t ConcurrencyGate::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

}  // namespace cbm
