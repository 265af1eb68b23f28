#include "fleet_semaphore.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include "adaptive_limit.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace cbm::fleet {
namespace {

// Every script reads the time from Redis (TIME, milliseconds): a lease's expiry is on the server's
// clock, whatever the nodes' clocks say. Redis 7 replicates a script's effects, so reading TIME before
// writing is allowed.
constexpr std::string_view kNow = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
)lua";

// The fleet's adaptive limit (KEYS[2], a hash: limit, rtt, cut_at): the node's AdaptiveLimit rule
// (engine/adaptive_limit.hpp) applied to the fleet's count. Absent, it is the ceiling.
constexpr std::string_view kEffectiveLimit = R"lua(
local function effective(ceiling)
  local shared = tonumber(redis.call('HGET', KEYS[2], 'limit') or ceiling)
  return math.max(1, math.min(ceiling, math.floor(shared)))
end
)lua";

// KEYS[1] the lease set, KEYS[2] the adaptive limit; ARGV: --fleet-concurrency, lease time (ms), lease
// id. Returns {granted (0|1), leases in use}. A lease already held is renewed (a call retried after a
// lost reply takes no second place).
constexpr std::string_view kAcquire = R"lua(
local limit = effective(tonumber(ARGV[1]))
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[3])
local used = redis.call('ZCARD', KEYS[1])
if not held and used >= limit then return {0, used} end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
if held then return {1, used} end
return {1, used + 1}
)lua";

// KEYS[1] the lease set, KEYS[2] the adaptive limit; ARGV: lease id, --fleet-concurrency, the attempt's
// verdict (ok | overload | other), its latency (ms), the cut factor, the latency weight, how long the
// limit is remembered (ms). Gives the lease back (idempotent) and feeds the fleet's limit as
// AdaptiveLimit does a node's: an overload (1302/1305) drops it to the fleet's leases still in flight,
// and at most once per round trip by the cut factor; a success while the limit binds adds 1/limit.
constexpr std::string_view kRelease = R"lua(
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
local verdict = ARGV[3]
if verdict == 'other' then return removed end
local ceiling = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local in_flight = redis.call('ZCARD', KEYS[1])
local limit = math.min(ceiling, tonumber(redis.call('HGET', KEYS[2], 'limit') or ceiling))
local rtt = tonumber(redis.call('HGET', KEYS[2], 'rtt') or 100)
if verdict == 'ok' then
  local w = tonumber(ARGV[6])
  rtt = (1 - w) * rtt + w * tonumber(ARGV[4])
  if in_flight + 1 >= math.floor(limit) then limit = math.min(ceiling, limit + 1 / limit) end
else
  limit = math.max(1, math.min(limit, in_flight))
  local cut_at = tonumber(redis.call('HGET', KEYS[2], 'cut_at') or 0)
  if cut_at == 0 or now - cut_at >= math.max(rtt, 1) then
    limit = math.max(1, limit * tonumber(ARGV[5]))
    redis.call('HSET', KEYS[2], 'cut_at', now)
  end
end
redis.call('HSET', KEYS[2], 'limit', string.format('%.4f', limit), 'rtt', string.format('%.1f', rtt))
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return removed
)lua";

// KEYS[1] the lease set, KEYS[2] the adaptive limit; ARGV: --fleet-concurrency, lease time (ms), holder, lease numbers... (a lease's id is
// holder#number). Moves each lease's expiry to now + lease time. A lease that already expired (its node
// could not renew in time) is taken again if there is room, else it is lost. Returns the lost numbers.
constexpr std::string_view kRenew = R"lua(
local limit = effective(tonumber(ARGV[1]))
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[3] .. '#' .. ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) or redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now + ttl, id)
  else
    lost[#lost + 1] = tonumber(ARGV[i])
  end
end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return lost
)lua";

// KEYS[1] the lease set. Returns the leases in use now.
constexpr std::string_view kInUse = R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
)lua";

redis::Script script(std::string_view body) {
  redis::Script s;
  s.source = std::string(kNow);
  s.source += kEffectiveLimit;
  s.source += body;
  return s;
}

// How long the fleet's adapted limit is remembered after the last attempt ended: a fleet that starts
// again later starts at --fleet-concurrency.
constexpr std::chrono::minutes kLimitMemory{10};

std::string hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string api_key_scope(std::string_view api_key) {
  // A context string first: the digest names this use only, never matches a plain hash of the key.
  static constexpr std::string_view kContext = "concurrent_bigmodel fleet limits v1";
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, kContext.data(), kContext.size()) == 1 &&
                  EVP_DigestUpdate(ctx, "\0", 1) == 1 &&
                  EVP_DigestUpdate(ctx, api_key.data(), api_key.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, digest.data(), &size) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || size < 16) throw std::runtime_error("SHA-256 is not available (OpenSSL)");
  // A hash tag ({...}): the lease set and the limit are in one Redis Cluster slot, as a script needs.
  std::string scope = "cbm:limits:{";
  scope += hex(digest.data(), 16);
  scope += "}:";
  return scope;
}

redis::Client::Options admission_client_options() {
  redis::Client::Options o;
  o.timeouts.connect = std::chrono::milliseconds(250);
  o.timeouts.command = std::chrono::milliseconds(1000);
  return o;
}

std::string lease_holder_name() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  std::random_device rd;
  const std::uint64_t nonce = (static_cast<std::uint64_t>(rd()) << 32) | rd();
  std::string name = host.data();
  name += ':';
  name += std::to_string(::getpid());
  name += ':';
  name += hex(reinterpret_cast<const unsigned char*>(&nonce), sizeof nonce);
  return name;
}

void validate(const FleetLimitSettings& s) {
  if (s.concurrency < 0) {
    std::string text = "fleet_concurrency must be 0 (no fleet-wide limit) or more, not ";
    text += std::to_string(s.concurrency);
    throw std::invalid_argument(text);
  }
  if (s.lease_ttl < std::chrono::seconds(1) || s.lease_ttl > std::chrono::hours(1)) {
    std::string text = "fleet_lease must be between 1 and 3600 seconds, not ";
    text += std::to_string(static_cast<double>(s.lease_ttl.count()) / 1000.0);
    throw std::invalid_argument(text);
  }
}

FleetSemaphore::FleetSemaphore(redis::RedisUrl url, std::string scope, std::string holder,
                               FleetLimitSettings settings)
    : acquire_(script(kAcquire)),
      renew_(script(kRenew)),
      release_(script(kRelease)),
      count_(script(kInUse)),
      client_(std::move(url), admission_client_options()),
      leases_key_(scope + "leases"),
      limit_key_(scope + "limit"),
      holder_(std::move(holder)),
      settings_(settings),
      rng_(std::random_device{}()) {
  validate(settings_);
  if (settings_.concurrency == 0) throw std::invalid_argument("fleet_concurrency must be 1 or more for a fleet limit");
}

FleetSemaphore::~FleetSemaphore() {
  if (held_.empty()) return;
  std::vector<std::string> zrem{"ZREM", leases_key_};
  for (const LeaseId lease : held_) zrem.push_back(member(lease));
  try {
    client_.command(zrem);
  } catch (const std::exception&) {
    // They expire within one lease time.
  }
}

std::string FleetSemaphore::member(LeaseId lease) const {
  std::string m = holder_;
  m += '#';
  m += std::to_string(lease);
  return m;
}

void FleetSemaphore::note(LogLevel level, std::string_view line) {
  if (log_ != nullptr) log_->log(level, line);
}

void FleetSemaphore::unavailable(const std::exception& e, const char* doing) {
  if (reported_unavailable_) return;
  reported_unavailable_ = true;
  std::string line = "fleet limit: Redis did not answer while ";
  line += doing;
  line += " (";
  line += e.what();
  line += "); no attempt starts until it answers again, and leases not renewed expire after ";
  line += std::to_string(settings_.lease_ttl.count());
  line += " ms";
  note(LogLevel::warning, line);
}

std::optional<SharedAdmission::LeaseId> FleetSemaphore::try_acquire(Clock::time_point now,
                                                                    const RateLimit::Reservation&) {
  if (now < retry_after_) return std::nullopt;
  const LeaseId lease = next_lease_;
  try {
    const redis::Reply reply = client_.eval(acquire_, {leases_key_, limit_key_},
                                            {std::to_string(settings_.concurrency),
                                             std::to_string(settings_.lease_ttl.count()), member(lease)});
    if (reported_unavailable_) note(LogLevel::info, "fleet limit: Redis answers again");
    reported_unavailable_ = false;
    if (reply.at(0).as_integer() != 1) return std::nullopt;
  } catch (const std::exception& e) {
    unavailable(e, "taking a lease");
    retry_after_ = now + kUnavailableRetry;
    return std::nullopt;
  }
  ++next_lease_;
  if (held_.empty()) renew_due_ = now + settings_.lease_ttl / 3;
  held_.insert(lease);
  return lease;
}

SharedAdmission::Clock::time_point FleetSemaphore::retry_at(Clock::time_point now) const {
  if (now < retry_after_) return retry_after_;
  // Jittered: refused nodes do not ask again in lockstep.
  std::uniform_int_distribution<long> jitter(kPollInterval.count() / 2, kPollInterval.count() * 3 / 2);
  return now + std::chrono::milliseconds(jitter(rng_));
}

void FleetSemaphore::release(LeaseId lease, const AttemptOutcome& outcome, Clock::time_point now) {
  if (held_.erase(lease) == 0) return;
  const char* verdict = "ok";
  std::chrono::milliseconds latency{0};
  if (!outcome.ok()) {
    verdict = AdaptiveLimit::is_overload(*outcome.error) ? "overload" : "other";
  } else {
    for (const auto& step : outcome.steps) latency += step.latency;
  }
  try {
    client_.eval(release_, {leases_key_, limit_key_},
                 {member(lease), std::to_string(settings_.concurrency), verdict, std::to_string(latency.count()),
                  std::to_string(AdaptiveLimit::kCutFactor), std::to_string(AdaptiveLimit::kLatencyWeight),
                  std::to_string(std::chrono::milliseconds(kLimitMemory).count())});
  } catch (const std::exception& e) {
    unavailable(e, "giving a lease back");
    retry_after_ = std::max(retry_after_, now + kUnavailableRetry);
  }
}

void FleetSemaphore::cancel(LeaseId lease, Clock::time_point now) {
  if (held_.erase(lease) == 0) return;
  try {
    client_.command({"ZREM", leases_key_, member(lease)});
  } catch (const std::exception& e) {
    unavailable(e, "giving a lease back");
    retry_after_ = std::max(retry_after_, now + kUnavailableRetry);
  }
}

SharedAdmission::Clock::time_point FleetSemaphore::maintain(Clock::time_point now) {
  if (held_.empty()) return Clock::time_point::max();
  if (now < renew_due_) return renew_due_;
  std::vector<std::string> args{std::to_string(settings_.concurrency), std::to_string(settings_.lease_ttl.count()),
                                holder_};
  for (const LeaseId lease : held_) args.push_back(std::to_string(lease));
  try {
    const redis::Reply lost = client_.eval(renew_, {leases_key_, limit_key_}, args);
    reported_unavailable_ = false;
    // A lost lease is forgotten: its attempt runs on without one (and gives back nothing when it ends).
    for (const redis::Reply& n : lost.as_array()) held_.erase(static_cast<LeaseId>(n.as_integer()));
    if (!lost.as_array().empty()) {
      lost_ += lost.as_array().size();
      std::string line = "fleet limit: ";
      line += std::to_string(lost.as_array().size());
      line += " leases expired while their attempts ran (Redis was out of reach for a lease time) and the fleet's "
              "limit is taken: it runs over its limit until they end";
      note(LogLevel::warning, line);
    }
    renew_due_ = now + settings_.lease_ttl / 3;
  } catch (const std::exception& e) {
    unavailable(e, "renewing leases");
    renew_due_ = now + settings_.lease_ttl / 10;  // try again well before they expire
  }
  return renew_due_;
}

std::optional<int> FleetSemaphore::shared_limit() {
  try {
    const redis::Reply r = client_.command_ok({"HGET", limit_key_, "limit"});
    if (r.is_nil()) return settings_.concurrency;
    return std::max(1, std::min(settings_.concurrency, static_cast<int>(std::stod(r.as_string()))));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<long long> FleetSemaphore::in_use() {
  try {
    return client_.eval(count_, {leases_key_}, {}).as_integer();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace cbm::fleet
