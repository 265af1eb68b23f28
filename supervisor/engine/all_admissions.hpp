// AllAdmissions: several SharedAdmissions as one — an attempt starts only when every one of them admits
// it (a fleet node with --fleet-concurrency and --fleet-rpm/--fleet-tpm). They are asked in the order
// given; when one refuses, the leases the earlier ones granted are cancelled (their attempt never
// starts) and its retry_at() is the answer. Called from the engine's thread only, as its parts are.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "shared_admission.hpp"

namespace cbm {

class AllAdmissions final : public SharedAdmission {
 public:
  // `parts`: at least one; asked first to last (put the one that refuses most cheaply first).
  explicit AllAdmissions(std::vector<std::shared_ptr<SharedAdmission>> parts);

  void bind_log(Logger& log) override;
  std::optional<LeaseId> try_acquire(Clock::time_point now, const RateLimit::Reservation& estimate) override;
  Clock::time_point retry_at(Clock::time_point now) const override;
  void release(LeaseId lease, const AttemptOutcome& outcome, Clock::time_point now) override;
  void cancel(LeaseId lease, Clock::time_point now) override;
  Clock::time_point maintain(Clock::time_point now) override;

 private:
  std::vector<std::shared_ptr<SharedAdmission>> parts_;
  std::map<LeaseId, std::vector<LeaseId>> held_;  // our lease -> each part's, in parts_' order
  LeaseId next_lease_ = 1;
  SharedAdmission* refused_by_ = nullptr;  // the part that refused last
};

}  // namespace cbm
