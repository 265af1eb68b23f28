#include "token_bucket.hpp"

#include <algorithm>

namespace cbm {
namespace {

// Debts below this are rounding, not debt: without it a wait of a few nanoseconds could follow the
// exact wait the caller was told.
constexpr double kNegligible = 1e-9;

}  // namespace

TokenBucket::TokenBucket(double per_minute, Clock::time_point now)
    : per_second_(per_minute / 60.0), updated_(now) {}

double TokenBucket::debt(Clock::time_point now) const {
  const double elapsed =
      std::chrono::duration<double>(std::max(now - updated_, Clock::duration::zero())).count();
  const double left = debt_ - elapsed * per_second_;
  return left > kNegligible ? left : 0.0;
}

TokenBucket::Clock::duration TokenBucket::wait(Clock::time_point now) const {
  const double seconds = debt(now) / per_second_;
  return std::chrono::ceil<Clock::duration>(std::chrono::duration<double>(seconds));
}

void TokenBucket::take(double cost, Clock::time_point now) {
  debt_ = debt(now) + cost;
  updated_ = std::max(now, updated_);
}

void TokenBucket::adjust(double delta, Clock::time_point now) {
  debt_ = std::max(0.0, debt(now) + delta);
  updated_ = std::max(now, updated_);
}

}  // namespace cbm
