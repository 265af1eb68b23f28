#include "adaptive_limit.hpp"

#include <algorithm>

namespace cbm {

AdaptiveLimit::AdaptiveLimit(int ceiling) : ceiling_(std::max(1, ceiling)), limit_(ceiling_) {}

bool AdaptiveLimit::is_overload(const ApiError& error) {
  return error.kind == ErrorKind::api && (error.code == "1302" || error.code == "1305");
}

bool AdaptiveLimit::on_success(std::chrono::milliseconds latency, std::size_t in_flight) {
  round_trip_ms_ = (1.0 - kLatencyWeight) * round_trip_ms_ + kLatencyWeight * static_cast<double>(latency.count());
  if (in_flight + 1 < static_cast<std::size_t>(effective())) return false;
  const int before = effective();
  limit_ = std::min<double>(ceiling_, limit_ + 1.0 / limit_);
  return effective() != before;
}

bool AdaptiveLimit::on_error(const ApiError& error, std::size_t in_flight, Clock::time_point now) {
  if (!is_overload(error)) return false;
  const int before = effective();
  limit_ = std::max(1.0, std::min(limit_, static_cast<double>(in_flight)));
  const auto cooldown = std::chrono::duration<double, std::milli>(std::max(round_trip_ms_, 1.0));
  if (last_cut_ == Clock::time_point{} || now - last_cut_ >= cooldown) {
    last_cut_ = now;
    limit_ = std::max(1.0, limit_ * kCutFactor);
  }
  return effective() != before;
}

bool AdaptiveLimit::on_outcome(const AttemptOutcome& outcome, std::size_t in_flight, Clock::time_point now) {
  if (!outcome.ok()) return on_error(*outcome.error, in_flight, now);
  std::chrono::milliseconds latency{0};
  for (const auto& step : outcome.steps) latency += step.latency;
  return on_success(latency, in_flight);
}

}  // namespace cbm
