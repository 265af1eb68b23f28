#include "spend.hpp"

#include <algorithm>

#include "cost_estimate.hpp"

namespace cbm {
namespace {

bool answered(const StepRecord& s) {
  return !s.response_id.empty() || s.usage.prompt_tokens > 0 || s.usage.completion_tokens > 0;
}

}  // namespace

void Spend::add_steps(const std::vector<StepRecord>& steps) {
  for (const auto& s : steps) {
    if (!answered(s)) continue;
    if (s.name == "search") ++search_calls;
    if (s.usage.prompt_tokens > 0 || s.usage.completion_tokens > 0) {
      ModelTokens& t = s.batch_id.empty() ? models[s.model] : batch_models[s.model];
      t.input += s.usage.prompt_tokens;
      t.output += s.usage.completion_tokens;
    }
  }
}

void Spend::add_record(const TaskResult& record) {
  if (record.duplicate_of) return;  // a copy of another record: its steps were paid once, there
  add_steps(record.steps);
  Usage in_steps;
  for (const auto& s : record.steps) in_steps += s.usage;
  const std::int64_t earlier_in = record.usage.prompt_tokens - in_steps.prompt_tokens;
  const std::int64_t earlier_out = record.usage.completion_tokens - in_steps.completion_tokens;
  if (earlier_in <= 0 && earlier_out <= 0) return;
  // Earlier attempts' steps are not kept in the record: their tokens are priced at the last model used.
  const std::string model = record.steps.empty() ? std::string("(unknown model)") : record.steps.back().model;
  ModelTokens& t = !record.steps.empty() && !record.steps.back().batch_id.empty() ? batch_models[model] : models[model];
  t.input += std::max<std::int64_t>(earlier_in, 0);
  t.output += std::max<std::int64_t>(earlier_out, 0);
}

Spend& Spend::operator+=(const Spend& other) {
  for (const auto& [model, t] : other.models) {
    ModelTokens& mine = models[model];
    mine.input += t.input;
    mine.output += t.output;
  }
  for (const auto& [model, t] : other.batch_models) {
    ModelTokens& mine = batch_models[model];
    mine.input += t.input;
    mine.output += t.output;
  }
  search_calls += other.search_calls;
  return *this;
}

std::int64_t Spend::tokens() const {
  std::int64_t n = 0;
  for (const auto& [model, t] : models) n += t.input + t.output;
  for (const auto& [model, t] : batch_models) n += t.input + t.output;
  return n;
}

CostFigure cost_of(const Spend& spend, const PriceTable& prices, std::string_view search_engine) {
  CostFigure c;
  for (const auto* by_model : {&spend.models, &spend.batch_models}) {
    const double factor = by_model == &spend.batch_models ? kBatchPriceFactor : 1.0;
    for (const auto& [model, t] : *by_model) {
      if (const ModelPrice* p = prices.model(model)) {
        c.amount += factor *
                    (static_cast<double>(t.input) * p->input_per_million +
                     static_cast<double>(t.output) * p->output_per_million) /
                    1e6;
      } else if (std::find(c.unpriced.begin(), c.unpriced.end(), model) == c.unpriced.end()) {
        c.unpriced.push_back(model);
      }
    }
  }
  if (spend.search_calls > 0) {
    if (const auto per_call = prices.search_call(search_engine)) {
      c.amount += static_cast<double>(spend.search_calls) * *per_call;
    } else {
      c.unpriced.emplace_back(search_engine);
    }
  }
  return c;
}

}  // namespace cbm
