#include "restart_governor.hpp"

#include "backoff.hpp"
#include "logger.hpp"

namespace cbm {

std::optional<std::string> RestartGovernor::on_death(Clock::time_point now) {
  recent_.push_back(now);
  while (!recent_.empty() && recent_.front() < now - limits_.period) recent_.pop_front();
  if (static_cast<int>(recent_.size()) <= limits_.max_restarts) return std::nullopt;
  if (last_progress_ && *last_progress_ >= now - limits_.period) return std::nullopt;
  return "workers keep crashing: " + std::to_string(recent_.size()) + " restarts within " +
         seconds_text(limits_.period) +
         " (over --max-restarts " + std::to_string(limits_.max_restarts) + ") and no task finished meanwhile";
}

RestartGovernor::Clock::duration RestartGovernor::backoff(int consecutive_deaths) {
  constexpr Backoff kRestart{std::chrono::milliseconds(50), std::chrono::milliseconds(5000)};
  return kRestart.ceiling(consecutive_deaths - 1);
}

}  // namespace cbm
