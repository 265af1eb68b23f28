// Spend: what a run used, as the platform reported it in each step's usage — prompt and completion
// tokens per model, and web search calls per search engine — and what that costs by a PriceTable.
// The budget (budget.hpp), the report's summary and the library's Summary all price a Spend, so they
// agree. docs/cost.md says how each step is counted.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "price_table.hpp"
#include "task.hpp"

namespace cbm {

struct ModelTokens {
  std::int64_t input = 0;
  std::int64_t output = 0;
};

struct Spend {
  std::map<std::string, ModelTokens, std::less<>> models;
  // Steps a Batch API batch answered (StepRecord::batch_id): priced at kBatchPriceFactor of the list price.
  std::map<std::string, ModelTokens, std::less<>> batch_models;
  std::int64_t search_calls = 0;  // web searches (priced per call of the run's search engine)

  // One attempt's steps: each step's usage goes to its model; each answered search step is one web
  // search call (a Web Search API step has no tokens, a tool step has both).
  void add_steps(const std::vector<StepRecord>& steps);
  // A terminal record (one restored by --resume): its final attempt's steps, and the usage of earlier
  // attempts (the record's total minus its steps') at the final attempt's last model.
  void add_record(const TaskResult& record);
  Spend& operator+=(const Spend& other);

  std::int64_t tokens() const;
  bool empty() const { return models.empty() && batch_models.empty() && search_calls == 0; }
};

// A Spend priced, its searches as calls of `search_engine`. `amount` counts what has a price;
// `unpriced` names the models and the search engine that were used and have none (then the cost is
// unknown, not `amount`).
struct CostFigure {
  double amount = 0;
  std::vector<std::string> unpriced;
  bool known() const { return unpriced.empty(); }
};
CostFigure cost_of(const Spend& spend, const PriceTable& prices, std::string_view search_engine);

}  // namespace cbm
