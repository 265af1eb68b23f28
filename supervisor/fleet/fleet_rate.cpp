#include "fleet_rate.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "fleet_semaphore.hpp"

namespace cbm::fleet {
namespace {

// The shared part of both scripts. KEYS[1] the request window (sorted set: member -> start, ms),
// KEYS[2] the token debt (hash: debt, at); ARGV[1] --fleet-rpm, ARGV[2] --fleet-tpm (0: that cap is off),
// ARGV[3] the window (ms), ARGV[4] the attempt's member prefix (its requests are PREFIX:1, PREFIX:2...).
// The time is Redis' own (TIME, ms): the nodes' clocks do not matter.
constexpr std::string_view kCommon = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
-- TokenBucket's rule: the debt as of now, repaid at tpm a window; below a millionth it is rounding.
local function owed()
  local debt = tonumber(redis.call('HGET', KEYS[2], 'debt') or 0)
  local at = tonumber(redis.call('HGET', KEYS[2], 'at') or now)
  local left = debt - math.max(0, now - at) * tpm / window
  if left > 1e-6 then return left end
  return 0
end
-- The key lives until its debt is repaid, and a window more.
local function owe(debt)
  redis.call('HSET', KEYS[2], 'debt', string.format('%.3f', debt), 'at', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(debt * window / tpm) + window)
end
)lua";

// ARGV[5] the requests to reserve, ARGV[6] the tokens to reserve. Returns {1, 0} when the attempt may
// start (its reservation made), else {0, ms until it may}.
constexpr std::string_view kAcquire = R"lua(
local n, tokens = tonumber(ARGV[5]), tonumber(ARGV[6])
local wait = 0
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  local used = redis.call('ZCARD', KEYS[1])
  local over = used + n - rpm
  if over > used then
    wait = window  -- more requests than the cap: never (the command line refuses such a cap)
  elseif over > 0 then
    -- the over-th oldest start leaves the window at its start + window
    local e = redis.call('ZRANGE', KEYS[1], over - 1, over - 1, 'WITHSCORES')
    wait = tonumber(e[2]) + window - now
  end
end
local debt = 0
if tpm > 0 then
  debt = owed()
  if debt > 0 then wait = math.max(wait, math.ceil(debt * window / tpm)) end
end
if wait > 0 then return {0, wait} end
if rpm > 0 then
  for i = 1, n do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
  redis.call('PEXPIRE', KEYS[1], window)
end
if tpm > 0 then owe(debt + tokens) end
return {1, 0}
)lua";

// ARGV[5] requests reserved, ARGV[6] requests sent, ARGV[7] tokens reserved, ARGV[8] tokens used.
// Replaces the reservation by what was spent: requests not sent leave the window, requests sent beyond
// the reservation enter it now; the debt is corrected by the tokens' difference (never below zero).
constexpr std::string_view kSettle = R"lua(
local reserved, sent = tonumber(ARGV[5]), tonumber(ARGV[6])
if rpm > 0 then
  for i = sent + 1, reserved do redis.call('ZREM', KEYS[1], ARGV[4] .. ':' .. i) end
  if sent > reserved then
    for i = reserved + 1, sent do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
    redis.call('PEXPIRE', KEYS[1], window)
  end
end
if tpm > 0 then owe(math.max(0, owed() + tonumber(ARGV[8]) - tonumber(ARGV[7]))) end
return 1
)lua";

redis::Script script(std::string_view body) {
  redis::Script s;
  s.source = std::string(kCommon);
  s.source += body;
  return s;
}

std::string whole(double units) {
  return std::to_string(std::llround(units));
}

}  // namespace

void validate(const FleetRateSettings& s) {
  for (const auto& [value, field] :
       {std::pair{s.requests_per_minute, "fleet_rpm"}, std::pair{s.tokens_per_minute, "fleet_tpm"}}) {
    if (value >= 0) continue;
    std::string text = field;
    text += " must be 0 (no fleet-wide cap) or more, not ";
    text += std::to_string(value);
    throw std::invalid_argument(text);
  }
}

FleetRate::FleetRate(redis::RedisUrl url, std::string scope, std::string holder, FleetRateSettings settings)
    : acquire_(script(kAcquire)),
      settle_(script(kSettle)),
      client_(std::move(url), admission_client_options()),
      requests_key_(scope + "rpm"),
      tokens_key_(scope + "tpm"),
      holder_(std::move(holder)),
      settings_(settings),
      rng_(std::random_device{}()) {
  validate(settings_);
  if (settings_.requests_per_minute == 0 && settings_.tokens_per_minute == 0) {
    throw std::invalid_argument("fleet_rpm or fleet_tpm must be 1 or more for a fleet-wide cap");
  }
}

FleetRate::~FleetRate() {
  log_ = nullptr;  // the run's log may be gone before the run's settings that own this
  write_unsettled(Clock::now());
}

std::string FleetRate::member(LeaseId lease) const {
  std::string m = holder_;
  m += '#';
  m += std::to_string(lease);
  return m;
}

void FleetRate::unavailable(const std::exception& e, const char* doing, Clock::time_point now) {
  unavailable_until_ = now + kUnavailableRetry;
  if (reported_unavailable_) return;
  reported_unavailable_ = true;
  if (log_ == nullptr) return;
  std::string line = "fleet rate: Redis did not answer while ";
  line += doing;
  line += " (";
  line += e.what();
  line += "); no attempt starts until it answers again";
  log_->log(LogLevel::warning, line);
}

void FleetRate::answered() {
  if (reported_unavailable_ && log_ != nullptr) log_->log(LogLevel::info, "fleet rate: Redis answers again");
  reported_unavailable_ = false;
}

std::optional<SharedAdmission::LeaseId> FleetRate::try_acquire(Clock::time_point now,
                                                               const RateLimit::Reservation& estimate) {
  if (now < unavailable_until_ || now < refused_until_) return std::nullopt;
  // Late corrections first: what was used is charged before anything new is admitted.
  if (!write_unsettled(now)) return std::nullopt;
  // Whole units: a request is one entry, tokens are counted as the platform does.
  const RateLimit::Reservation reserved{std::round(estimate.requests), std::round(estimate.tokens)};
  const LeaseId lease = next_lease_;
  try {
    const redis::Reply reply = client_.eval(
        acquire_, {requests_key_, tokens_key_},
        {std::to_string(settings_.requests_per_minute), std::to_string(settings_.tokens_per_minute),
         std::to_string(kWindow.count()), member(lease), whole(reserved.requests), whole(reserved.tokens)});
    answered();
    if (reply.at(0).as_integer() != 1) {
      refused_until_ = now + std::chrono::milliseconds(reply.at(1).as_integer());
      return std::nullopt;
    }
  } catch (const std::exception& e) {
    unavailable(e, "reserving a start", now);
    return std::nullopt;
  }
  ++next_lease_;
  held_.emplace(lease, reserved);
  return lease;
}

SharedAdmission::Clock::time_point FleetRate::retry_at(Clock::time_point now) const {
  const Clock::time_point at = std::max({now, refused_until_, unavailable_until_});
  std::uniform_int_distribution<long> jitter(0, kJitter.count());
  return at + std::chrono::milliseconds(jitter(rng_));
}

void FleetRate::release(LeaseId lease, const AttemptOutcome& outcome, Clock::time_point now) {
  const std::optional<RateLimit::Reservation> used = RateLimit::spent(outcome);
  if (!used) {
    held_.erase(lease);  // what it spent is unknown: the reservation stands
    return;
  }
  settle(lease, *used, now);
}

void FleetRate::cancel(LeaseId lease, Clock::time_point now) {
  settle(lease, RateLimit::Reservation{}, now);
}

void FleetRate::settle(LeaseId lease, const RateLimit::Reservation& used, Clock::time_point now) {
  const auto it = held_.find(lease);
  if (it == held_.end()) return;
  unsettled_.push_back(Settlement{member(lease), it->second, used});
  held_.erase(it);
  refused_until_ = Clock::time_point{};  // a refund may free a place before the refusal's wait
  write_unsettled(now);
}

bool FleetRate::write_unsettled(Clock::time_point now) {
  while (!unsettled_.empty()) {
    const Settlement& s = unsettled_.front();
    try {
      client_.eval(
          settle_, {requests_key_, tokens_key_},
          {std::to_string(settings_.requests_per_minute), std::to_string(settings_.tokens_per_minute),
           std::to_string(kWindow.count()), s.member, whole(s.reserved.requests), whole(s.used.requests),
           whole(s.reserved.tokens), whole(s.used.tokens)});
      answered();
    } catch (const std::exception& e) {
      unavailable(e, "charging an attempt's use", now);
      return false;
    }
    unsettled_.erase(unsettled_.begin());
  }
  return true;
}

SharedAdmission::Clock::time_point FleetRate::maintain(Clock::time_point now) {
  if (unsettled_.empty()) return Clock::time_point::max();
  if (now >= unavailable_until_) write_unsettled(now);
  return unsettled_.empty() ? Clock::time_point::max() : unavailable_until_;
}

}  // namespace cbm::fleet
