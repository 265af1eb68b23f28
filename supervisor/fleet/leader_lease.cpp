#include "leader_lease.hpp"

namespace cbm::fleet {
namespace {

// KEYS[1] the lease; ARGV: holder, lease time (ms). 1 when renewed, 0 when it is not the holder's.
constexpr const char* kRenew = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua";

// KEYS[1] the lease; ARGV: holder. Deletes it only when it is the holder's.
constexpr const char* kRelease = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

}  // namespace

LeaderLease::LeaderLease(redis::Client& client, std::string key, std::string holder, std::chrono::milliseconds ttl)
    : client_(client),
      key_(std::move(key)),
      holder_(std::move(holder)),
      ttl_(ttl),
      renew_{kRenew, {}},
      release_{kRelease, {}} {}

bool LeaderLease::take() {
  const std::string ttl = std::to_string(ttl_.count());
  const redis::Reply set = client_.command_ok({"SET", key_, holder_, "NX", "PX", ttl});
  held_ = !set.is_nil() || renew();  // already ours (a reply lost on the way): keep it
  return held_;
}

bool LeaderLease::renew() {
  held_ = client_.eval(renew_, {key_}, {holder_, std::to_string(ttl_.count())}).as_integer() == 1;
  return held_;
}

void LeaderLease::release() {
  if (!held_) return;
  held_ = false;
  client_.eval(release_, {key_}, {holder_});
}

std::string LeaderLease::holder_now() {
  const redis::Reply r = client_.command_ok({"GET", key_});
  return r.is_nil() ? std::string() : r.as_string();
}

}  // namespace cbm::fleet
