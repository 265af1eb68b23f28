#include "all_admissions.hpp"

#include <algorithm>
#include <stdexcept>

namespace cbm {

AllAdmissions::AllAdmissions(std::vector<std::shared_ptr<SharedAdmission>> parts) : parts_(std::move(parts)) {
  if (parts_.empty() || std::find(parts_.begin(), parts_.end(), nullptr) != parts_.end()) {
    throw std::invalid_argument("AllAdmissions needs at least one admission, and no null one");
  }
}

void AllAdmissions::bind_log(Logger& log) {
  for (const auto& part : parts_) part->bind_log(log);
}

std::optional<SharedAdmission::LeaseId> AllAdmissions::try_acquire(Clock::time_point now,
                                                                   const RateLimit::Reservation& estimate) {
  std::vector<LeaseId> granted;
  granted.reserve(parts_.size());
  for (const auto& part : parts_) {
    const std::optional<LeaseId> lease = part->try_acquire(now, estimate);
    if (!lease) {
      for (std::size_t i = 0; i < granted.size(); ++i) parts_[i]->cancel(granted[i], now);
      refused_by_ = part.get();
      return std::nullopt;
    }
    granted.push_back(*lease);
  }
  refused_by_ = nullptr;
  const LeaseId lease = next_lease_++;
  held_.emplace(lease, std::move(granted));
  return lease;
}

SharedAdmission::Clock::time_point AllAdmissions::retry_at(Clock::time_point now) const {
  return refused_by_ != nullptr ? refused_by_->retry_at(now) : now;
}

void AllAdmissions::release(LeaseId lease, const AttemptOutcome& outcome, Clock::time_point now) {
  const auto it = held_.find(lease);
  if (it == held_.end()) return;
  for (std::size_t i = 0; i < parts_.size(); ++i) parts_[i]->release(it->second[i], outcome, now);
  held_.erase(it);
}

void AllAdmissions::cancel(LeaseId lease, Clock::time_point now) {
  const auto it = held_.find(lease);
  if (it == held_.end()) return;
  for (std::size_t i = 0; i < parts_.size(); ++i) parts_[i]->cancel(it->second[i], now);
  held_.erase(it);
}

SharedAdmission::Clock::time_point AllAdmissions::maintain(Clock::time_point now) {
  Clock::time_point next = Clock::time_point::max();
  for (const auto& part : parts_) next = std::min(next, part->maintain(now));
  return next;
}

}  // namespace cbm
