// LeaderLease: which of a fleet monitor's `submit` processes runs its rounds (docs/fleet.md, "Fleet
// monitors"). One Redis string per job holds the leader's name with an expiry: taken with SET NX PX,
// kept by a compare-and-renew script (only its holder may move the expiry), given up by a
// compare-and-delete script (a leader stopped by SIGTERM hands over at once). A standby keeps trying
// to take it; a leader that dies stops renewing, so a standby takes over within one lease time.
// Expiry is Redis' own (PX): the processes' clocks do not matter.
#pragma once

#include <chrono>
#include <string>

#include "redis_client.hpp"

namespace cbm::fleet {

class LeaderLease {
 public:
  // `client` must outlive the lease. Nothing is sent before take().
  LeaderLease(redis::Client& client, std::string key, std::string holder, std::chrono::milliseconds ttl);

  // Takes the lease if it is free (or already ours: renewed). True when this process leads now.
  // Throws what the client throws when Redis does not answer.
  bool take();
  // Moves the expiry forward if the lease is still ours; false when it is not (it expired and another
  // took it): the caller must stop leading.
  bool renew();
  // Gives the lease up if it is ours (the next standby takes it at once). Idempotent.
  void release();

  bool held() const { return held_; }
  const std::string& key() const { return key_; }
  // How often a leader renews, and a standby tries: a third of the lease time.
  std::chrono::milliseconds renew_interval() const { return ttl_ / 3; }
  // The holder's name now ("" when free), for a standby's status line.
  std::string holder_now();

 private:
  redis::Client& client_;
  const std::string key_;
  const std::string holder_;
  const std::chrono::milliseconds ttl_;
  redis::Script renew_;
  redis::Script release_;
  bool held_ = false;
};

}  // namespace cbm::fleet
