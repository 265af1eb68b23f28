#include "all_admissions.hpp"

#include <catch2/catch.hpp>
#include <set>

using namespace std::chrono_literals;
using cbm::AllAdmissions;
using cbm::SharedAdmission;

namespace {

// A shared limit of `capacity` leases that records what it was told.
class Recorder final : public SharedAdmission {
 public:
  Recorder(std::size_t capacity, Clock::duration retry) : capacity_(capacity), retry_(retry) {}

  void bind_log(cbm::Logger&) override {}
  std::optional<LeaseId> try_acquire(Clock::time_point,
                                     const cbm::RateLimit::Reservation& estimate) override {
    last_estimate = estimate;
    if (held.size() >= capacity_) return std::nullopt;
    held.insert(next_);
    return next_++;
  }
  Clock::time_point retry_at(Clock::time_point now) const override { return now + retry_; }
  void release(LeaseId lease, const cbm::AttemptOutcome&, Clock::time_point) override {
    released += held.erase(lease);
  }
  void cancel(LeaseId lease, Clock::time_point) override { cancelled += held.erase(lease); }
  Clock::time_point maintain(Clock::time_point now) override { return now + retry_; }

  std::set<LeaseId> held;
  std::size_t released = 0;
  std::size_t cancelled = 0;
  cbm::RateLimit::Reservation last_estimate;

 private:
  const std::size_t capacity_;
  const Clock::duration retry_;
  LeaseId next_ = 1;
};

const SharedAdmission::Clock::time_point t0{};

}  // namespace

TEST_CASE("all admissions: an attempt starts only when every part admits it, with the same estimate",
          "[shared]") {
  auto semaphore = std::make_shared<Recorder>(2, 20ms);
  auto rate = std::make_shared<Recorder>(1, 30s);
  AllAdmissions all({semaphore, rate});
  const auto first = all.try_acquire(t0, {2.0, 1500.0});
  REQUIRE(first);
  CHECK(rate->last_estimate.requests == 2.0);
  CHECK(rate->last_estimate.tokens == 1500.0);
  // The semaphore has room, the rate cap has not: the semaphore's lease is cancelled, not kept.
  CHECK_FALSE(all.try_acquire(t0, {1.0, 1000.0}));
  CHECK(semaphore->held.size() == 1);
  CHECK(semaphore->cancelled == 1);
  CHECK(all.retry_at(t0) == t0 + 30s);  // the refusing part says when to ask again
  // Ending the attempt releases every part's lease, once.
  all.release(*first, cbm::AttemptOutcome{}, t0);
  all.release(*first, cbm::AttemptOutcome{}, t0);
  CHECK(semaphore->released == 1);
  CHECK(rate->released == 1);
  CHECK(semaphore->held.empty());
  CHECK(rate->held.empty());
}

TEST_CASE("all admissions: a part that refuses first is the only one asked, and maintain() is the soonest",
          "[shared]") {
  auto semaphore = std::make_shared<Recorder>(0, 20ms);
  auto rate = std::make_shared<Recorder>(5, 30s);
  AllAdmissions all({semaphore, rate});
  CHECK_FALSE(all.try_acquire(t0, {}));
  CHECK(rate->held.empty());
  CHECK(rate->cancelled == 0);
  CHECK(all.retry_at(t0) == t0 + 20ms);
  CHECK(all.maintain(t0) == t0 + 20ms);
}
