// FleetSemaphore: --fleet-concurrency, one limit per API key across a fleet (docs/fleet.md,
// "Fleet-wide limits"). A lease-based semaphore in Redis: a sorted set of lease ids scored by their
// expiry, in milliseconds of the Redis server's clock (TIME, read inside the scripts, so the nodes'
// clocks do not matter). Acquiring drops the expired leases and adds one when fewer than the limit
// remain; renewing moves a node's leases' expiry forward; releasing removes one (idempotent). A lease
// that is not renewed expires after the lease time: a node that dies (kill -9, a lost host) gives its
// capacity back by itself within one lease time, and never leaks it.
//
// The limit adapts fleet-wide as a node's does (AdaptiveLimit): releasing a lease reports its attempt's
// outcome, and a 1302/1305 anywhere lowers the limit every node acquires against (a hash beside the
// lease set, remembered for ten minutes after the last attempt).
//
// The sorted set's key is derived from the API key (api_key_scope: a SHA-256 digest, never the key),
// so every job on one account shares it.
//
// It is the engine's SharedAdmission (engine/shared_admission.hpp): the engine's gate asks it last,
// after the node's own limits, and keeps the leases of running attempts alive through maintain(). It
// owns its Redis connection and is used from the engine's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "logger.hpp"
#include "redis_client.hpp"
#include "shared_admission.hpp"

namespace cbm::fleet {

// The key prefix of one API key's fleet-wide limits: "cbm:limits:{D}:", D the first 32 hex digits of a
// SHA-256 of the key (with a fixed context string). The key itself never reaches Redis.
std::string api_key_scope(std::string_view api_key);

// A name for this process among the fleet's lease holders: host, pid and a random part.
std::string lease_holder_name();

// The Redis client settings of what the engine's thread asks (the fleet's limits): short timeouts, so a
// Redis that stalls or drops packets delays attempt deadlines and signals by a second at most, not by
// the client's defaults (2 s to connect, 5 s a command).
redis::Client::Options admission_client_options();

struct FleetLimitSettings {
  int concurrency = 0;                         // --fleet-concurrency: attempts in flight fleet-wide; 0: none
  std::chrono::milliseconds lease_ttl{10000};  // --fleet-lease: a dead node's leases are back after this
};

// Checks `settings` (concurrency >= 0, 1 s <= lease <= 1 h); std::invalid_argument naming the field.
void validate(const FleetLimitSettings& settings);

class FleetSemaphore final : public SharedAdmission {
 public:
  // How often a refused node asks again (with jitter): others' releases are not announced.
  static constexpr std::chrono::milliseconds kPollInterval{20};
  // How long a node waits before asking again after Redis failed to answer.
  static constexpr std::chrono::milliseconds kUnavailableRetry{500};

  // Connects lazily (the first try_acquire). Throws std::invalid_argument on bad settings.
  FleetSemaphore(redis::RedisUrl url, std::string scope, std::string holder, FleetLimitSettings settings);
  // Gives back what it still holds (best effort: what fails expires by itself).
  ~FleetSemaphore() override;
  FleetSemaphore(const FleetSemaphore&) = delete;
  FleetSemaphore& operator=(const FleetSemaphore&) = delete;

  void bind_log(Logger& log) override { log_ = &log; }
  // The estimate does not matter here: every attempt takes one lease.
  std::optional<LeaseId> try_acquire(Clock::time_point now, const RateLimit::Reservation& estimate) override;
  Clock::time_point retry_at(Clock::time_point now) const override;
  void release(LeaseId lease, const AttemptOutcome& outcome, Clock::time_point now) override;
  void cancel(LeaseId lease, Clock::time_point now) override;
  Clock::time_point maintain(Clock::time_point now) override;

  std::size_t held() const { return held_.size(); }
  // Leases in use fleet-wide now (expired ones not counted), or nullopt when Redis does not answer.
  std::optional<long long> in_use();
  // The fleet's adapted limit now (--fleet-concurrency until a 1302/1305 lowers it), or nullopt when
  // Redis does not answer.
  std::optional<int> shared_limit();
  // The Redis key of the lease set.
  const std::string& leases_key() const { return leases_key_; }
  // Leases that expired while their attempt still ran, and could not be taken again (the fleet may
  // then briefly run more than the limit: a node that could not reach Redis for a whole lease time).
  std::uint64_t lost() const { return lost_; }

 private:
  std::string member(LeaseId lease) const;
  redis::Script acquire_;
  redis::Script renew_;
  redis::Script release_;
  redis::Script count_;
  void unavailable(const std::exception& e, const char* doing);
  void note(LogLevel level, std::string_view line);

  redis::Client client_;
  const std::string leases_key_;
  const std::string limit_key_;
  const std::string holder_;
  const FleetLimitSettings settings_;
  Logger* log_ = nullptr;  // the run's (bind_log); none: quiet
  std::set<LeaseId> held_;  // the leases of running attempts
  LeaseId next_lease_ = 1;
  Clock::time_point renew_due_{};
  Clock::time_point retry_after_{};  // after a failure to reach Redis
  bool reported_unavailable_ = false;
  std::uint64_t lost_ = 0;
  mutable std::minstd_rand rng_;
};

}  // namespace cbm::fleet
