#include "restart_governor.hpp"

#include <algorithm>
#include <cstdio>

namespace cbm {

std::optional<std::string> RestartGovernor::on_death(Clock::time_point now) {
  recent_.push_back(now);
  while (!recent_.empty() && recent_.front() < now - limits_.period) recent_.pop_front();
  if (static_cast<int>(recent_.size()) <= limits_.max_restarts) return std::nullopt;
  if (last_progress_ && *last_progress_ >= now - limits_.period) return std::nullopt;
  char period[32];
  std::snprintf(period, sizeof period, "%.3g s", std::chrono::duration<double>(limits_.period).count());
  return "workers keep crashing: " + std::to_string(recent_.size()) + " restarts within " + period +
         " (over --max-restarts " + std::to_string(limits_.max_restarts) + ") and no task finished meanwhile";
}

RestartGovernor::Clock::duration RestartGovernor::backoff(int consecutive_deaths) {
  constexpr std::chrono::milliseconds kBase{50};
  constexpr std::chrono::milliseconds kCap{5000};
  std::chrono::milliseconds d = kBase;
  for (int i = 1; i < consecutive_deaths && d < kCap; ++i) d *= 2;
  return std::min(d, kCap);
}

}  // namespace cbm
