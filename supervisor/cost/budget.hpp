// Budget: --max-tokens-total and --max-cost over the run's actual usage (spend.hpp), priced by the
// run's PriceTable. The engine (attempt_engine.cpp) feeds it every attempt's steps and asks it before
// dispatching: once reached, nothing new starts. With BudgetPeriod::day it starts over at local
// midnight (next_local_midnight) and the engine pauses until then instead of stopping. docs/cost.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "price_table.hpp"
#include "spend.hpp"

namespace cbm {

enum class BudgetPeriod { run, day };

struct Budget {
  std::int64_t max_tokens = 0;  // prompt + completion tokens; 0 = no limit
  double max_cost = 0;          // in the price table's currency; 0 = no limit
  BudgetPeriod period = BudgetPeriod::run;

  bool limited() const { return max_tokens > 0 || max_cost > 0; }
};

class BudgetMeter {
 public:
  BudgetMeter(Budget budget, std::shared_ptr<const PriceTable> prices, std::string search_engine);

  const Budget& budget() const { return budget_; }
  void add_steps(const std::vector<StepRecord>& steps) { spent_.add_steps(steps); }
  void add(const Spend& spend) { spent_ += spend; }
  // The limit is reached (a cost budget over a model without a price counts what is priced).
  bool reached() const;
  // "1234 tokens of --max-tokens-total 1000, CNY 0.0100 of --max-cost 0.5000"
  std::string describe() const;
  // A daily budget's period: the first call starts it; once `now` passes its end (local midnight),
  // a new one starts with nothing spent. A run budget has one period: nothing happens.
  void roll(std::chrono::system_clock::time_point now);

 private:
  Budget budget_;
  std::shared_ptr<const PriceTable> prices_;
  std::string search_engine_;
  Spend spent_;
  std::optional<std::chrono::system_clock::time_point> period_end_;  // a daily budget's next midnight
};

// The first local midnight (00:00 in the process's time zone, TZ) after `now`.
std::chrono::system_clock::time_point next_local_midnight(std::chrono::system_clock::time_point now);

}  // namespace cbm
