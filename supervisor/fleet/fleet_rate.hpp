// FleetRate: --fleet-rpm and --fleet-tpm, a requests-a-minute and a tokens-a-minute cap per API key
// across a fleet (docs/fleet.md, "Fleet-wide limits"). Kept in Redis under the API key's scope (the
// one FleetSemaphore uses), decided by Lua scripts on the Redis server's clock (TIME): the nodes' clocks
// do not matter.
//
// The rule is the local --rpm/--tpm's (RateLimit): an attempt reserves what it is expected to cost when
// it starts (RateLimit::estimate(): its requests, and the mean tokens of this node's successful attempts)
// and, when it ends, the reservation is replaced by what it spent (RateLimit::spent(); an attempt
// without steps keeps its reservation). What is shared is:
//   - requests: a sliding window of kWindow (60 s). Each request reserved is an entry in a sorted set,
//     scored by its start; an attempt starts only if the entries of the last kWindow plus its own stay
//     within --fleet-rpm. So no kWindow interval ever holds more than --fleet-rpm starts. The set holds
//     at most --fleet-rpm entries (older ones are trimmed on every call).
//   - tokens: TokenBucket's rule (token_bucket.hpp) in a hash (debt, at): an attempt starts only while
//     nothing is owed, its estimate is added to the debt, which is repaid at --fleet-tpm per kWindow;
//     the end corrects it by what was used (a refund never goes below zero debt).
// Both keys expire once they no longer matter (the window a window after its last start, the debt a
// window after it is repaid), so an account that stops leaves nothing behind.
//
// Redis out of reach: no attempt starts (fail closed). A correction that cannot be written waits and is
// written by maintain(), the next try_acquire() or the destructor: what was used is charged late, and is
// lost only if Redis is still away when the node ends.
// Used from the engine's thread only; owns its Redis connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "logger.hpp"
#include "redis_client.hpp"
#include "shared_admission.hpp"

namespace cbm::fleet {

struct FleetRateSettings {
  std::int64_t requests_per_minute = 0;  // --fleet-rpm: 0 = none
  std::int64_t tokens_per_minute = 0;    // --fleet-tpm: 0 = none
};

// Checks `settings` (each 0 or more); std::invalid_argument naming the field (fleet_rpm, fleet_tpm).
void validate(const FleetRateSettings& settings);

class FleetRate final : public SharedAdmission {
 public:
  // The window of --fleet-rpm, and the period --fleet-tpm's debt is repaid over: the caps are a minute's.
  static constexpr std::chrono::milliseconds kWindow{60000};
  // How long a node waits before asking again after Redis failed to answer.
  static constexpr std::chrono::milliseconds kUnavailableRetry{500};
  // Spread added to a refusal's wait, so refused nodes do not ask again in lockstep.
  static constexpr std::chrono::milliseconds kJitter{20};

  // `scope`: api_key_scope(). Connects lazily. Throws std::invalid_argument on bad settings or when
  // both caps are 0.
  FleetRate(redis::RedisUrl url, std::string scope, std::string holder, FleetRateSettings settings);
  // Writes the corrections still waiting (best effort: Redis may still be out of reach).
  ~FleetRate() override;
  FleetRate(const FleetRate&) = delete;
  FleetRate& operator=(const FleetRate&) = delete;

  void bind_log(Logger& log) override { log_ = &log; }
  std::optional<LeaseId> try_acquire(Clock::time_point now, const RateLimit::Reservation& estimate) override;
  Clock::time_point retry_at(Clock::time_point now) const override;
  void release(LeaseId lease, const AttemptOutcome& outcome, Clock::time_point now) override;
  void cancel(LeaseId lease, Clock::time_point now) override;
  // Writes the corrections Redis could not take when their attempts ended.
  Clock::time_point maintain(Clock::time_point now) override;

  // The Redis keys: the request window (sorted set) and the token debt (hash).
  const std::string& requests_key() const { return requests_key_; }
  const std::string& tokens_key() const { return tokens_key_; }
  // Corrections not written yet (Redis was out of reach when their attempts ended).
  std::size_t unsettled() const { return unsettled_.size(); }

 private:
  struct Settlement {
    std::string member;
    RateLimit::Reservation reserved;
    RateLimit::Reservation used;
  };
  std::string member(LeaseId lease) const;
  void settle(LeaseId lease, const RateLimit::Reservation& used, Clock::time_point now);
  bool write_unsettled(Clock::time_point now);
  void unavailable(const std::exception& e, const char* doing, Clock::time_point now);
  void answered();

  redis::Script acquire_;
  redis::Script settle_;
  redis::Client client_;
  const std::string requests_key_;
  const std::string tokens_key_;
  const std::string holder_;
  const FleetRateSettings settings_;
  Logger* log_ = nullptr;                           // the run's (bind_log); none: quiet
  std::map<LeaseId, RateLimit::Reservation> held_;  // what each running attempt reserved
  std::vector<Settlement> unsettled_;
  LeaseId next_lease_ = 1;
  Clock::time_point refused_until_{};      // the last refusal's wait: nothing frees a place before it
  Clock::time_point unavailable_until_{};  // after a failure to reach Redis
  bool reported_unavailable_ = false;
  mutable std::minstd_rand rng_;
};

}  // namespace cbm::fleet
