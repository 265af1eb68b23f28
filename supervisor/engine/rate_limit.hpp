// RateLimit: the run's --rpm and --tpm caps (TokenBucket each), applied to task attempts.
//
// An attempt reserves what it will cost when it starts: its requests (2 with web search, 1 without)
// and an estimate of its tokens (prompt + completion): the mean over the successful attempts so far,
// 1,000 a request until one has reported usage. When it ends, settle() replaces the reservation by what the
// outcome says was spent (a step per request sent, the steps' `usage`); an outcome without steps (a worker's
// crash or timeout, told by the supervisor, not the pipeline) keeps its reservation. Requests sent by an
// attempt leave within its round trip of its start, so a window of W seconds sees at most the cap's
// share of W plus one attempt (plus the requests of attempts whose second step falls in it).
// Pure (time is passed in); not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "task.hpp"
#include "token_bucket.hpp"

namespace cbm {

struct RateCaps {
  std::int64_t requests_per_minute = 0;  // 0 = no cap
  std::int64_t tokens_per_minute = 0;    // 0 = no cap
};

class RateLimit {
 public:
  using Clock = TokenBucket::Clock;
  static constexpr double kTokensPerRequestGuess = 1000.0;

  struct Reservation {
    double requests = 0.0;
    double tokens = 0.0;
  };

  RateLimit(const RateCaps& caps, int requests_per_attempt, Clock::time_point now);

  // What an attempt that starts now is expected to cost: its requests and the token estimate. The one
  // rule for a reservation, local or shared (a fleet's --fleet-rpm/--fleet-tpm reserve the same).
  Reservation estimate() const;
  // What an attempt that ended with `outcome` spent: a request per step, the steps' usage; nullopt when
  // the outcome has no steps (a crash or timeout told by the supervisor: unknown, the reservation stands).
  static std::optional<Reservation> spent(const AttemptOutcome& outcome);

  // How long until an attempt may start; zero when it may now.
  Clock::duration wait(Clock::time_point now) const;
  // Charges an attempt that starts now (precondition: wait(now) is zero).
  Reservation reserve(Clock::time_point now);
  // The attempt that made `reserved` ended with `outcome`.
  void settle(const Reservation& reserved, const AttemptOutcome& outcome, Clock::time_point now);

  double tokens_per_attempt() const;  // the current estimate

 private:
  const int requests_per_attempt_;
  std::optional<TokenBucket> requests_;
  std::optional<TokenBucket> tokens_;
  double measured_tokens_ = 0.0;  // summed over attempts that reported usage
  std::int64_t measured_attempts_ = 0;
};

}  // namespace cbm
