#include "cost_estimate.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <unordered_set>

#include "duplicate_topics.hpp"
#include "result_codec.hpp"
#include "row_fields.hpp"
#include "run_driver.hpp"
#include "topic_plan.hpp"
#include "topic_source.hpp"

namespace cbm {
namespace {

std::int64_t message_tokens(const std::string& text) { return estimate_tokens(text) + kMessageOverheadTokens; }

// What the search step puts before the models: each result's snippet (content_size) and its title and
// link, counted at one token a character (the snippets' language is unknown).
std::int64_t sources_tokens(const SearchSettings& s) {
  const std::int64_t snippet = s.content_size == "high" ? 2500 : 600;
  return static_cast<std::int64_t>(s.count) * (snippet + kSourceOverheadChars);
}

StepEstimate& step_of(std::vector<StepEstimate>& steps, const std::string& step, const std::string& model,
                      const char* kind) {
  for (auto& s : steps) {
    if (s.step == step && s.model == model) return s;
  }
  steps.push_back(StepEstimate{step, model, kind, 0, 0, 0, 0});
  return steps.back();
}

// One chat call of a step: its request, and its tokens as likely and at most (input, output).
void add_chat_call(CostEstimate& e, const std::string& step, const std::string& model, ModelTokens likely,
                   ModelTokens at_most) {
  StepEstimate& s = step_of(e.steps, step, model, "chat");
  ++s.requests;
  s.input_tokens += likely.input;
  s.output_tokens_likely += likely.output;
  s.output_tokens_max += at_most.output;
  ModelTokens& l = e.likely.models[model];
  l.input += likely.input;
  l.output += likely.output;
  ModelTokens& m = e.at_most.models[model];
  m.input += at_most.input;
  m.output += at_most.output;
}

PriceTable batch_prices(const PriceTable& online) {
  PriceTable batch = online;
  for (auto& [model, p] : batch.models) {
    p.input_per_million *= kBatchPriceFactor;
    p.output_per_million *= kBatchPriceFactor;
  }
  return batch;
}

std::string cost_text(const CostFigure& c, const std::string& currency) {
  if (c.known()) return format_money(c.amount, currency);
  std::string text = "unknown (no price for ";
  for (std::size_t i = 0; i < c.unpriced.size(); ++i) {
    if (i > 0) text += ", ";
    text += c.unpriced[i];
  }
  text += ')';
  return text;
}

void write_cost(JsonWriter& w, const char* key, const CostFigure& c) {
  w.Key(key);
  c.known() ? w.Double(c.amount) : w.Null();
}

std::string thousands(std::int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  const std::size_t lead = digits.size() % 3;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (i - lead) % 3 == 0 && i >= lead) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

std::int64_t estimate_tokens(std::string_view text) {
  std::int64_t ascii = 0;
  std::int64_t other = 0;
  for (const unsigned char c : text) {
    if (c < 0x80) {
      ++ascii;
    } else if ((c & 0xC0) != 0x80) {
      ++other;  // the lead byte of a multi-byte character
    }
  }
  return (ascii + 2) / 3 + other;
}

CostEstimate estimate_run(const RunConfig& cfg) {
  // The input is read as a run reads it (topic_plan.hpp): the same checks, passes and duplicates.
  TopicPlan plan(cfg, [] { return false; });
  check_placeholders(cfg, plan.field_names());
  plan.require_topics();
  TopicPlan::Round round = plan.next_round();
  CostEstimate e;
  e.iterations = cfg.iterations;
  const PipelineConfig& p = cfg.pipeline;
  const PromptSet& prompts = p.prompts;
  const std::int64_t max_out = p.model.max_tokens;
  const std::int64_t summary_likely = std::min(kTypicalSearchSummary, max_out);
  const std::int64_t analysis_likely = std::min(kTypicalAnalysis, max_out);
  const bool via_tool = p.search && p.search_via == SearchVia::tool;
  const std::int64_t sources = p.search ? sources_tokens(p.search_settings) : 0;

  std::unordered_set<std::string> seen;  // keys of repeated topics only
  while (auto t = round.source->next()) {
    const auto& repeated = round.survey.duplicated;
    if (std::binary_search(repeated.begin(), repeated.end(), task_hash(t->topic, t->fields)) &&
        !seen.insert(task_key(t->topic, t->fields)).second) {
      ++e.repeated;
      continue;
    }
    ++e.topics;
    if (p.search) {
      ++e.likely.search_calls;
      ++e.at_most.search_calls;
      if (via_tool) {
        const std::int64_t in = message_tokens(prompts.search_system.render(t->topic, "", t->fields)) +
                                message_tokens(prompts.search_user.render(t->topic, "", t->fields)) + sources;
        add_chat_call(e, "search", p.tool_model, {in, summary_likely}, {in, max_out});
      } else {
        ++step_of(e.steps, "search", p.search_settings.engine, "web_search_api").requests;
      }
    }
    const std::string no_sources = p.search ? std::string() : format_sources({}, "");
    const std::int64_t rendered = message_tokens(prompts.analysis_system.render(t->topic, no_sources, t->fields)) +
                                  message_tokens(prompts.analysis_user.render(t->topic, no_sources, t->fields));
    // The sources block appears once per placeholder use; count it once (the built-in prompts use it once).
    const std::int64_t in_likely = rendered + sources + (via_tool ? summary_likely : 0);
    const std::int64_t in_max = rendered + sources + (via_tool ? max_out : 0);
    add_chat_call(e, "analysis", p.chat_model, {in_likely, analysis_likely}, {in_max, max_out});
  }
  e.invalid_lines = plan.held_invalid_count() + round.source->invalid_count();
  if (cfg.iterations > 1) {
    const auto n = static_cast<std::uint64_t>(cfg.iterations);
    for (auto& s : e.steps) {
      s.requests *= n;
      s.input_tokens *= static_cast<std::int64_t>(n);
      s.output_tokens_likely *= static_cast<std::int64_t>(n);
      s.output_tokens_max *= static_cast<std::int64_t>(n);
    }
    for (Spend* spend : {&e.likely, &e.at_most}) {
      for (auto& [model, tokens] : spend->models) {
        tokens.input *= static_cast<std::int64_t>(n);
        tokens.output *= static_cast<std::int64_t>(n);
      }
      spend->search_calls *= static_cast<std::int64_t>(n);
    }
  }
  return e;
}

std::string estimate_text(const CostEstimate& e, const RunConfig& cfg) {
  const PriceTable& prices = *cfg.prices;
  const PriceTable batch = batch_prices(prices);
  const std::string& engine = cfg.pipeline.search_settings.engine;
  std::string out = "dry run: nothing was sent\n";
  out += "topics: " + std::to_string(e.topics);
  if (e.repeated > 0) out += " (+" + std::to_string(e.repeated) + " repeated, reported as copies)";
  if (e.invalid_lines > 0) out += ", " + std::to_string(e.invalid_lines) + " invalid lines skipped";
  out += e.iterations == 0 ? "; figures per round (--iterations 0 runs until stopped)\n"
                           : "; " + std::to_string(e.iterations) + " round(s)\n";
  out += "requests (input tokens estimated from the rendered prompts; output: typical / at --max-tokens):\n";
  for (const auto& s : e.steps) {
    char line[512];
    if (s.kind == "web_search_api") {
      std::snprintf(line, sizeof line, "  %-8s  %-14s  %10s web search API calls\n", s.step.c_str(), s.model.c_str(),
                    thousands(static_cast<std::int64_t>(s.requests)).c_str());
    } else {
      std::snprintf(line, sizeof line, "  %-8s  %-14s  %10s chat calls  input ~%s  output ~%s / %s\n",
                    s.step.c_str(), s.model.c_str(), thousands(static_cast<std::int64_t>(s.requests)).c_str(),
                    thousands(s.input_tokens).c_str(), thousands(s.output_tokens_likely).c_str(),
                    thousands(s.output_tokens_max).c_str());
    }
    out += line;
  }
  if (e.likely.search_calls > 0) {
    out += "  web searches: " + thousands(e.likely.search_calls) + " calls of " + engine + "\n";
  }
  out += "estimated cost (an ESTIMATE: price table '" + prices.origin + "' of " + prices.date + ", " +
         prices.currency + "; via batch = " + std::to_string(static_cast<int>(kBatchPriceFactor * 100)) +
         "% of list price for chat calls):\n";
  char row[512];
  std::snprintf(row, sizeof row, "  %-8s  %-34s  %s\n", "", "online", "via batch");
  out += row;
  std::snprintf(row, sizeof row, "  %-8s  %-34s  %s\n", "typical",
                cost_text(cost_of(e.likely, prices, engine), prices.currency).c_str(),
                cost_text(cost_of(e.likely, batch, engine), prices.currency).c_str());
  out += row;
  std::snprintf(row, sizeof row, "  %-8s  %-34s  %s\n", "at most",
                cost_text(cost_of(e.at_most, prices, engine), prices.currency).c_str(),
                cost_text(cost_of(e.at_most, batch, engine), prices.currency).c_str());
  out += row;
  return out;
}

std::string estimate_json(const CostEstimate& e, const RunConfig& cfg) {
  const PriceTable& prices = *cfg.prices;
  const PriceTable batch = batch_prices(prices);
  const std::string& engine = cfg.pipeline.search_settings.engine;
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("dry_run");
  w.Bool(true);
  w.Key("topics");
  w.Uint64(e.topics);
  w.Key("repeated_topics");
  w.Uint64(e.repeated);
  w.Key("invalid_input_lines");
  w.Uint64(e.invalid_lines);
  w.Key("iterations");
  w.Int(e.iterations);
  w.Key("requests");
  w.StartArray();
  for (const auto& s : e.steps) {
    w.StartObject();
    write_key_string(w, "step", s.step);
    write_key_string(w, "model", s.model);
    write_key_string(w, "kind", s.kind);
    w.Key("requests");
    w.Uint64(s.requests);
    w.Key("input_tokens");
    w.Int64(s.input_tokens);
    w.Key("output_tokens_typical");
    w.Int64(s.output_tokens_likely);
    w.Key("output_tokens_max");
    w.Int64(s.output_tokens_max);
    w.EndObject();
  }
  w.EndArray();
  w.Key("web_search_calls");
  w.Int64(e.likely.search_calls);
  w.Key("estimated_cost");
  w.StartObject();
  write_key_string(w, "currency", prices.currency);
  write_key_string(w, "price_table", prices.origin);
  write_key_string(w, "price_table_date", prices.date);
  write_key_string(w, "note", "an estimate: token counts are heuristic, prices may have changed");
  for (const auto& [name, spend] : {std::pair<const char*, const Spend*>{"typical", &e.likely},
                                    std::pair<const char*, const Spend*>{"at_most", &e.at_most}}) {
    w.Key(name);
    w.StartObject();
    const CostFigure online = cost_of(*spend, prices, engine);
    write_cost(w, "online", online);
    write_cost(w, "batch", cost_of(*spend, batch, engine));
    w.Key("unpriced");
    w.StartArray();
    for (const auto& u : online.unpriced) w.String(u.c_str(), static_cast<rapidjson::SizeType>(u.size()));
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace cbm
