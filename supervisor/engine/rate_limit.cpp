#include "rate_limit.hpp"

#include <algorithm>

namespace cbm {

RateLimit::RateLimit(const RateCaps& caps, int requests_per_attempt, Clock::time_point now)
    : requests_per_attempt_(requests_per_attempt) {
  if (caps.requests_per_minute > 0) requests_.emplace(static_cast<double>(caps.requests_per_minute), now);
  if (caps.tokens_per_minute > 0) tokens_.emplace(static_cast<double>(caps.tokens_per_minute), now);
}

double RateLimit::tokens_per_attempt() const {
  return measured_attempts_ > 0 ? measured_tokens_ / static_cast<double>(measured_attempts_)
                                : kTokensPerRequestGuess * requests_per_attempt_;
}

RateLimit::Reservation RateLimit::estimate() const {
  return Reservation{static_cast<double>(requests_per_attempt_), tokens_per_attempt()};
}

std::optional<RateLimit::Reservation> RateLimit::spent(const AttemptOutcome& outcome) {
  if (outcome.steps.empty()) return std::nullopt;
  std::int64_t tokens = 0;
  for (const auto& step : outcome.steps) tokens += step.usage.total_tokens;
  return Reservation{static_cast<double>(outcome.steps.size()), static_cast<double>(tokens)};
}

RateLimit::Clock::duration RateLimit::wait(Clock::time_point now) const {
  Clock::duration d = Clock::duration::zero();
  if (requests_) d = std::max(d, requests_->wait(now));
  if (tokens_) d = std::max(d, tokens_->wait(now));
  return d;
}

RateLimit::Reservation RateLimit::reserve(Clock::time_point now) {
  const Reservation expected = estimate();
  Reservation r;
  if (requests_) {
    r.requests = expected.requests;
    requests_->take(r.requests, now);
  }
  if (tokens_) {
    r.tokens = expected.tokens;
    tokens_->take(r.tokens, now);
  }
  return r;
}

void RateLimit::settle(const Reservation& reserved, const AttemptOutcome& outcome, Clock::time_point now) {
  const std::optional<Reservation> used = spent(outcome);
  if (!used) return;  // what it spent is unknown: the reservation stands
  if (outcome.ok() && used->tokens > 0) {
    measured_tokens_ += used->tokens;
    ++measured_attempts_;
  }
  if (requests_) requests_->adjust(used->requests - reserved.requests, now);
  if (tokens_) tokens_->adjust(used->tokens - reserved.tokens, now);
}

}  // namespace cbm
