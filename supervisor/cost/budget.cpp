#include "budget.hpp"

#include <ctime>

namespace cbm {

BudgetMeter::BudgetMeter(Budget budget, std::shared_ptr<const PriceTable> prices, std::string search_engine)
    : budget_(budget), prices_(std::move(prices)), search_engine_(std::move(search_engine)) {}

bool BudgetMeter::reached() const {
  if (budget_.max_tokens > 0 && spent_.tokens() >= budget_.max_tokens) return true;
  return budget_.max_cost > 0 && prices_ && cost_of(spent_, *prices_, search_engine_).amount >= budget_.max_cost;
}

std::string BudgetMeter::describe() const {
  std::string text = std::to_string(spent_.tokens());
  text += " tokens";
  if (budget_.max_tokens > 0) {
    text += " of --max-tokens-total ";
    text += std::to_string(budget_.max_tokens);
  }
  if (prices_) {
    const CostFigure cost = cost_of(spent_, *prices_, search_engine_);
    text += ", estimated cost ";
    text += cost.known() ? format_money(cost.amount, prices_->currency) : std::string("unknown");
    if (budget_.max_cost > 0) {
      text += " of --max-cost ";
      text += format_money(budget_.max_cost, prices_->currency);
    }
  }
  return text;
}

void BudgetMeter::roll(std::chrono::system_clock::time_point now) {
  if (budget_.period != BudgetPeriod::day) return;
  if (period_end_ && now < *period_end_) return;
  if (period_end_) spent_ = Spend{};
  period_end_ = next_local_midnight(now);
}

std::chrono::system_clock::time_point next_local_midnight(std::chrono::system_clock::time_point now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm local{};
  ::localtime_r(&t, &local);
  local.tm_hour = 0;
  local.tm_min = 0;
  local.tm_sec = 0;
  local.tm_mday += 1;
  local.tm_isdst = -1;  // mktime decides (a DST change on that day)
  return std::chrono::system_clock::from_time_t(std::mktime(&local));
}

}  // namespace cbm
