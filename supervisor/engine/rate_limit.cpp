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

RateLimit::Clock::duration RateLimit::wait(Clock::time_point now) const {
  Clock::duration d = Clock::duration::zero();
  if (requests_) d = std::max(d, requests_->wait(now));
  if (tokens_) d = std::max(d, tokens_->wait(now));
  return d;
}

RateLimit::Reservation RateLimit::reserve(Clock::time_point now) {
  Reservation r;
  if (requests_) {
    r.requests = requests_per_attempt_;
    requests_->take(r.requests, now);
  }
  if (tokens_) {
    r.tokens = tokens_per_attempt();
    tokens_->take(r.tokens, now);
  }
  return r;
}

void RateLimit::settle(const Reservation& reserved, const AttemptOutcome& outcome, Clock::time_point now) {
  if (outcome.steps.empty()) return;  // what it spent is unknown: the reservation stands
  std::int64_t tokens = 0;
  for (const auto& step : outcome.steps) tokens += step.usage.total_tokens;
  if (outcome.ok() && tokens > 0) {
    measured_tokens_ += static_cast<double>(tokens);
    ++measured_attempts_;
  }
  if (requests_) requests_->adjust(static_cast<double>(outcome.steps.size()) - reserved.requests, now);
  if (tokens_) tokens_->adjust(static_cast<double>(tokens) - reserved.tokens, now);
}

}  // namespace cbm
