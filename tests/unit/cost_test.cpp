// The cost module: the price table's parser, the token heuristic, pricing a Spend, the budget meter
// and the dry run's counts (docs/cost.md).
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "budget.hpp"
#include "cost_estimate.hpp"
#include "price_table.hpp"
#include "spend.hpp"

namespace {

constexpr const char* kTable =
    R"({"currency":"CNY","date":"2026-01-01","models":{"m":{"input_per_million":2,"output_per_million":8}},
        "search_per_call":{"search_std":0.01}})";

cbm::StepRecord step(const char* name, const char* model, std::int64_t in, std::int64_t out) {
  cbm::StepRecord s;
  s.name = name;
  s.model = model;
  s.response_id = "r";
  s.usage.prompt_tokens = in;
  s.usage.completion_tokens = out;
  s.usage.total_tokens = in + out;
  return s;
}

}  // namespace

TEST_CASE("price table: the bundled table parses and names its date and currency", "[cost]") {
  const cbm::PriceTable& t = cbm::bundled_price_table();
  CHECK_FALSE(t.currency.empty());
  CHECK_FALSE(t.date.empty());
  CHECK(t.search_call("search_std").has_value());
}

TEST_CASE("price table: bad tables are refused naming the file and the entry", "[cost]") {
  CHECK_THROWS_WITH(cbm::parse_price_table("[]", "p.json"), Catch::Contains("price file 'p.json'"));
  CHECK_THROWS_WITH(cbm::parse_price_table("{", "p.json"), Catch::Contains("not JSON"));
  CHECK_THROWS_WITH(cbm::parse_price_table(R"({"currency":"CNY","date":"d","models":{"m":{"input_per_million":-1,"output_per_million":1}}})", "p.json"),
                    Catch::Contains("models.m.input_per_million"));
  CHECK_THROWS_WITH(cbm::parse_price_table(R"({"currency":"CNY","date":"d","models":{"m":{"input_per_million":1}}})", "p.json"),
                    Catch::Contains("models.m.output_per_million: missing"));
  CHECK_THROWS_WITH(cbm::parse_price_table(R"({"date":"d","models":{}})", "p.json"), Catch::Contains("currency: missing"));
  CHECK_THROWS_WITH(cbm::parse_price_table(R"({"currency":"CNY","date":"d","models":{},"x":1})", "p.json"),
                    Catch::Contains("unknown member 'x'"));
  CHECK_THROWS_WITH(cbm::load_price_file("/nonexistent/prices.json"), Catch::Contains("'/nonexistent/prices.json'"));
}

TEST_CASE("spend: tokens by model and search calls are priced, an unknown model makes the cost unknown", "[cost]") {
  const cbm::PriceTable t = cbm::parse_price_table(kTable, "t");
  cbm::Spend s;
  s.add_steps({step("search", "m", 1000000, 0), step("analysis", "m", 0, 1000000)});
  CHECK(s.search_calls == 1);
  CHECK(s.tokens() == 2000000);
  const cbm::CostFigure c = cbm::cost_of(s, t, "search_std");
  REQUIRE(c.known());
  CHECK(c.amount == Approx(2 + 8 + 0.01));
  s.add_steps({step("analysis", "other", 10, 10)});
  const cbm::CostFigure unknown = cbm::cost_of(s, t, "search_std");
  CHECK_FALSE(unknown.known());
  CHECK(unknown.unpriced == std::vector<std::string>{"other"});
}

TEST_CASE("spend: a record's earlier attempts are counted at its last model", "[cost]") {
  cbm::TaskResult r;
  r.steps = {step("analysis", "m", 10, 5)};
  r.usage.prompt_tokens = 30;
  r.usage.completion_tokens = 15;
  cbm::Spend s;
  s.add_record(r);
  CHECK(s.models.at("m").input == 30);
  CHECK(s.models.at("m").output == 15);
}

TEST_CASE("budget: reached by tokens or by cost, reset by a new period", "[cost]") {
  auto t = std::make_shared<const cbm::PriceTable>(cbm::parse_price_table(kTable, "t"));
  cbm::BudgetMeter tokens(cbm::Budget{100, 0, cbm::BudgetPeriod::run}, t, "search_std");
  tokens.add_steps({step("analysis", "m", 60, 30)});
  CHECK_FALSE(tokens.reached());
  tokens.add_steps({step("analysis", "m", 10, 0)});
  CHECK(tokens.reached());
  CHECK_THAT(tokens.describe(), Catch::Contains("100 tokens of --max-tokens-total 100"));
  tokens.roll(std::chrono::system_clock::now() + std::chrono::hours(48));  // a run budget has one period
  CHECK(tokens.reached());
  cbm::BudgetMeter cost(cbm::Budget{0, 0.02, cbm::BudgetPeriod::run}, t, "search_std");
  cost.add_steps({step("search", "m", 0, 0)});
  CHECK_FALSE(cost.reached());
  cost.add_steps({step("search", "m", 0, 0)});
  CHECK(cost.reached());
}

TEST_CASE("budget: a daily budget starts over at each local midnight, reached or not", "[cost]") {
  auto t = std::make_shared<const cbm::PriceTable>(cbm::parse_price_table(kTable, "t"));
  cbm::BudgetMeter daily(cbm::Budget{100, 0, cbm::BudgetPeriod::day}, t, "search_std");
  const auto day1 = std::chrono::system_clock::now();
  const auto midnight = cbm::next_local_midnight(day1);
  daily.roll(day1);
  daily.add_steps({step("analysis", "m", 40, 20)});  // 60 of 100: not reached on day 1
  daily.roll(midnight - std::chrono::seconds(1));
  daily.add_steps({step("analysis", "m", 20, 0)});
  CHECK_FALSE(daily.reached());
  daily.roll(midnight + std::chrono::seconds(1));  // day 2: the 80 of day 1 are gone
  daily.add_steps({step("analysis", "m", 50, 20)});
  CHECK_FALSE(daily.reached());
  daily.add_steps({step("analysis", "m", 30, 0)});
  CHECK(daily.reached());
}

TEST_CASE("spend: a repeated topic's copy is not priced again", "[cost]") {
  cbm::TaskResult first;
  first.steps = {step("analysis", "m", 10, 5)};
  first.usage.prompt_tokens = 10;
  first.usage.completion_tokens = 5;
  cbm::TaskResult copy = first;
  copy.usage = {};
  copy.duplicate_of = 0;
  cbm::Spend s;
  s.add_record(first);
  s.add_record(copy);
  CHECK(s.models.at("m").input == 10);
  CHECK(s.models.at("m").output == 5);
}

TEST_CASE("budget: the next local midnight is within a day and at 00:00", "[cost]") {
  const auto now = std::chrono::system_clock::now();
  const auto m = cbm::next_local_midnight(now);
  CHECK(m > now);
  CHECK(m - now <= std::chrono::hours(25));
  const std::time_t tt = std::chrono::system_clock::to_time_t(m);
  std::tm local{};
  ::localtime_r(&tt, &local);
  CHECK(local.tm_hour == 0);
  CHECK(local.tm_min == 0);
}

TEST_CASE("estimate: tokens are counted conservatively for CJK and Latin text", "[cost]") {
  CHECK(cbm::estimate_tokens("") == 0);
  CHECK(cbm::estimate_tokens("abcdef") == 2);
  CHECK(cbm::estimate_tokens("abcdefg") == 3);
  CHECK(cbm::estimate_tokens("量子计算") == 4);
}

TEST_CASE("estimate: requests per step and model follow the pipeline, repeats and invalid lines are not sent",
          "[cost]") {
  const std::string path = "cost_test_topics.txt";
  {
    std::ofstream f(path);
    f << "alpha\nbeta\nalpha\n\n# comment\ngamma\n";
  }
  cbm::RunConfig c;
  c.topics_file = path;
  c.pipeline.tool_model = "tool";
  c.pipeline.chat_model = "chat";
  c.iterations = 2;
  cbm::CostEstimate e = cbm::estimate_run(c);
  CHECK(e.topics == 3);
  CHECK(e.repeated == 1);
  REQUIRE(e.steps.size() == 2);
  CHECK(e.steps[0].step == "search");
  CHECK(e.steps[0].model == "tool");
  CHECK(e.steps[0].requests == 6);
  CHECK(e.steps[1].model == "chat");
  CHECK(e.steps[1].requests == 6);
  CHECK(e.steps[1].output_tokens_max == 6 * c.pipeline.model.max_tokens);
  CHECK(e.likely.search_calls == 6);

  c.pipeline.search_via = cbm::SearchVia::api;
  e = cbm::estimate_run(c);
  CHECK(e.steps[0].kind == "web_search_api");
  CHECK(e.likely.models.count("tool") == 0);

  c.pipeline.search = false;
  e = cbm::estimate_run(c);
  REQUIRE(e.steps.size() == 1);
  CHECK(e.steps[0].step == "analysis");
  CHECK(e.likely.search_calls == 0);
  std::remove(path.c_str());
}
