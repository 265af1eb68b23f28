// The dry run, the price table and budgets end to end, against the simulator (docs/cost.md; README
// "Cheaper runs"): a dry run sends nothing and counts the requests a real run sends; its --output is the
// estimate's JSON alone; bad price files and unpriced cost budgets are usage errors naming the flag and
// the entry; --max-tokens-total and --max-cost stop dispatch within one wave of in-flight attempts, in
// every mode, and --resume with a larger budget finishes every topic once.
#include <rapidjson/document.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;
namespace fs = std::filesystem;

namespace {

// The analysis prompt is the bare topic: every request of a budget test is the same size.
constexpr const char* kBareTopicPrompt = "[analysis.user]\n{topic}\n";

// A price table in which a token costs exactly 1 (a million tokens cost a million): a --max-cost of N is
// reached exactly when --max-tokens-total N would be, with no rounding.
constexpr const char* kUnitPrices = R"({"currency": "CNY", "date": "2031-01-02",
  "models": {"glm-4.5-air": {"input_per_million": 1000000, "output_per_million": 1000000},
             "glm-4.7": {"input_per_million": 1000000, "output_per_million": 1000000}},
  "search_per_call": {"search_std": 0}})";

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  INFO(text.substr(0, 2000));
  REQUIRE_FALSE(d.HasParseError());
  REQUIRE(d.IsObject());
  return d;
}

// The supervisor run to its end in `dir` (its stdout and stderr there), with `args` after the base URL.
struct Finished {
  int status = -1;
  std::string out;
  std::string err;
};
Finished run_cli(const Simulator& sim, const TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {supervisor_path(), "--base-url", sim.base_url(), "--delay", "0"};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p(argv, supervisor_spawn_options(dir.path()));
  Finished f;
  f.status = p.exit_code(120s);
  f.out = p.out();
  f.err = p.err();
  return f;
}

// The requests the simulator received, by "step model" ("search glm-4.7", "search search_std",
// "analysis glm-4.5-air"): a chat call with the web_search tool is the search step via the tool, a
// Web Search API call the search step via the API (by its engine), any other chat call the analysis.
std::map<std::string, std::int64_t> received_by_step(const Simulator& sim) {
  std::map<std::string, std::int64_t> out;
  for (const auto& r : sim.recent_requests()) {
    const rapidjson::Document body = r.json();
    if (r.is_web_search()) {
      ++out[std::string("search ") + body["search_engine"].GetString()];
    } else {
      ++out[std::string(body.HasMember("tools") ? "search " : "analysis ") + body["model"].GetString()];
    }
  }
  return out;
}

// The dry run's estimate, by the same keys.
std::map<std::string, std::int64_t> estimated_by_step(const rapidjson::Value& estimate) {
  std::map<std::string, std::int64_t> out;
  for (const auto& s : estimate["requests"].GetArray()) {
    out[std::string(s["step"].GetString()) + " " + s["model"].GetString()] += s["requests"].GetInt64();
  }
  return out;
}

std::string abort_reason(const rapidjson::Value& report) {
  const auto& r = report["summary"]["abort_reason"];
  return r.IsString() ? r.GetString() : "";
}

unsigned file_mode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// The files in `dir`, by name.
std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

}  // namespace

TEST_CASE("a dry run sends nothing and counts, per step and model, the requests a real run sends",
          "[cost][dry-run][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  const std::vector<std::string> search = GENERATE(std::vector<std::string>{"--search-via", "tool"},
                                                   std::vector<std::string>{"--search-via", "api"},
                                                   std::vector<std::string>{"--no-search"});
  INFO("--mode " << mode << " " << search.front());
  Simulator sim;
  TempDir dir;
  // Three distinct topics, two repeats (reported as copies, not sent) and two invalid lines (skipped).
  write_text(dir / "topics.jsonl",
             "{\"topic\": \"tidal power in Wales\"}\n"
             "{\"topic\": \"urban beekeeping\"}\n"
             "this line is not JSON\n"
             "{\"topic\": \"tidal power in Wales\"}\n"
             "{\"title\": \"a row without a topic\"}\n"
             "{\"topic\": \"lithium recycling\"}\n"
             "{\"topic\": \"urban beekeeping\"}\n");
  std::vector<std::string> common = {"--topics-file", (dir / "topics.jsonl").string(), "--chat-model", "glm-4.7",
                                     "--tool-model", "glm-4.5-air", "--mode", mode, "--quiet"};
  common.insert(common.end(), search.begin(), search.end());

  std::vector<std::string> dry = common;
  dry.insert(dry.end(), {"--dry-run", "--output", (dir / "estimate.json").string()});
  const Finished estimate_run = run_cli(sim, dir, dry);
  INFO("dry run stderr:\n" << estimate_run.err);
  REQUIRE(estimate_run.status == 0);
  CHECK_THAT(estimate_run.out, Catch::Contains("dry run: nothing was sent"));
  // Nothing reached the platform.
  CHECK(sim.requests_total() == 0);
  CHECK(sim.stats()["web_search_requests"].GetInt64() == 0);
  const rapidjson::Document estimate = parse_json(read_text(dir / "estimate.json"));
  CHECK(estimate["topics"].GetInt64() == 3);
  CHECK(estimate["repeated_topics"].GetInt64() == 2);
  CHECK(estimate["invalid_input_lines"].GetInt64() == 2);

  std::vector<std::string> real = common;
  real.insert(real.end(), {"--output", (dir / "report.json").string()});
  const Finished real_run = run_cli(sim, dir, real);
  INFO("real run stderr:\n" << real_run.err);
  REQUIRE(real_run.status == 0);
  const std::map<std::string, std::int64_t> sent = received_by_step(sim);
  CHECK(estimated_by_step(estimate) == sent);
  // The comparison is of something: three analyses, and three searches unless --no-search.
  CHECK(sent.at("analysis glm-4.7") == 3);
  CHECK(sent.size() == (search.front() == "--no-search" ? 1u : 2u));
}

TEST_CASE("a dry run with --output writes only the estimate as JSON with mode 0600 and no journal or report",
          "[cost][dry-run]") {
  Simulator sim;
  TempDir dir;
  fs::create_directory(dir / "out");
  write_text(dir / "topics.csv", "topic,region\nsolar farms,Kenya\nwind farms,Chile\nsolar farms,Kenya\n");
  const Finished f = run_cli(sim, dir,
                             {"--topics-file", (dir / "topics.csv").string(), "--dry-run", "--output",
                              (dir / "out" / "estimate.json").string(), "--no-search"});
  INFO(f.err);
  REQUIRE(f.status == 0);
  CHECK(sim.requests_total() == 0);
  // The estimate alone: no journal beside it, no report.
  CHECK(files_in(dir / "out") == std::set<std::string>{"estimate.json"});
  CHECK(file_mode(dir / "out" / "estimate.json") == 0600);
  const rapidjson::Document e = parse_json(read_text(dir / "out" / "estimate.json"));
  CHECK(e["dry_run"].GetBool());
  CHECK(e["topics"].GetInt64() == 2);
  CHECK(e["repeated_topics"].GetInt64() == 1);
  REQUIRE(e["requests"].Size() == 1);
  CHECK(std::string(e["requests"][0]["step"].GetString()) == "analysis");
  CHECK(e["requests"][0]["requests"].GetInt64() == 2);
  CHECK(std::string(e["estimated_cost"]["price_table"].GetString()) == "bundled");
}

TEST_CASE("a dry run with --resume is refused: it estimates the whole input", "[cost][dry-run]") {
  Simulator sim;
  TempDir dir;
  write_text(dir / "topics.txt", "a topic\n");
  write_text(dir / "report.journal.jsonl", "");
  const Finished f = run_cli(sim, dir,
                             {"--topics-file", (dir / "topics.txt").string(), "--dry-run", "--resume",
                              "--output", (dir / "report.json").string()});
  CHECK(f.status == 2);
  CHECK_THAT(f.err, Catch::Contains("--dry-run with --resume:") && Catch::Contains("whole input"));
  CHECK(sim.requests_total() == 0);
  // The journal was not touched.
  CHECK(read_text(dir / "report.journal.jsonl").empty());
}

TEST_CASE("a price file that is not a price table exits 2 naming the flag, the file and the entry", "[cost]") {
  struct Bad {
    const char* text;
    const char* entry;
  };
  const Bad bad = GENERATE(
      Bad{"this is not JSON", "not JSON"},
      Bad{R"({"currency":"CNY","date":"2031-01-02","models":{"glm-4.5-air":{"input_per_million":-1,"output_per_million":2}}})",
          "models.glm-4.5-air.input_per_million: expected a number >= 0"},
      Bad{R"({"currency":"CNY","date":"2031-01-02","models":{"glm-4.5-air":{"input_per_million":"1","output_per_million":2}}})",
          "models.glm-4.5-air.input_per_million: expected a number >= 0, got string"},
      Bad{R"({"currency":"CNY","date":"2031-01-02","models":{},"search_per_call":{"search_std":true}})",
          "search_per_call.search_std: expected a number >= 0"});
  INFO(bad.text);
  Simulator sim;
  TempDir dir;
  write_text(dir / "prices.json", bad.text);
  write_text(dir / "topics.txt", "a topic\n");
  for (const bool dry : {false, true}) {
    std::vector<std::string> args = {"--topics-file", (dir / "topics.txt").string(), "--price-file",
                                     (dir / "prices.json").string(), "--no-search",
                                     "--output", (dir / "report.json").string()};
    if (dry) args.emplace_back("--dry-run");
    const Finished f = run_cli(sim, dir, args);
    INFO("dry run: " << dry << "\n" << f.err);
    CHECK(f.status == 2);
    CHECK_THAT(f.err, Catch::Contains("--price-file: price file '" + (dir / "prices.json").string() + "'") &&
                          Catch::Contains(bad.entry));
  }
  CHECK(sim.requests_total() == 0);
  CHECK_FALSE(fs::exists(dir / "report.json"));
}

TEST_CASE("a cost budget over a model without a price exits 2 naming --max-cost and --price-file", "[cost]") {
  Simulator sim;
  TempDir dir;
  write_text(dir / "topics.txt", "a topic\n");
  // The bundled table has no price for glm-4.5-air (docs/cost.md).
  const Finished f = run_cli(sim, dir,
                             {"--topics-file", (dir / "topics.txt").string(), "--no-search", "--chat-model",
                              "glm-4.5-air", "--max-cost", "5", "--output", (dir / "report.json").string()});
  INFO(f.err);
  CHECK(f.status == 2);
  CHECK_THAT(f.err, Catch::StartsWith("concurrent_bigmodel: --max-cost: the price table 'bundled'") &&
                        Catch::Contains("model 'glm-4.5-air'") && Catch::Contains("--price-file"));
  CHECK_THAT(f.err, !Catch::Contains("max_cost:"));
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("the report summary prices the run by the price table and the summary line shows tokens and cost",
          "[cost]") {
  Simulator sim({"--content-bytes", "400"});
  TempDir dir;
  write_text(dir / "topics.txt", "wave energy\ncarbon capture\n");
  write_text(dir / "prompts.txt", kBareTopicPrompt);
  write_text(dir / "prices.json", kUnitPrices);
  const Finished f = run_cli(sim, dir,
                             {"--topics-file", (dir / "topics.txt").string(), "--no-search", "--prompt-file",
                              (dir / "prompts.txt").string(), "--price-file", (dir / "prices.json").string(),
                              "--output", (dir / "report.json").string()});
  INFO(f.err);
  REQUIRE(f.status == 0);
  const rapidjson::Document report = parse_json(read_text(dir / "report.json"));
  const auto& summary = report["summary"];
  const std::int64_t tokens = summary["usage"]["total_tokens"].GetInt64();
  REQUIRE(tokens > 0);
  REQUIRE(summary.HasMember("estimated_cost"));
  const auto& cost = summary["estimated_cost"];
  CHECK(std::string(cost["price_table_date"].GetString()) == "2031-01-02");
  CHECK(std::string(cost["currency"].GetString()) == "CNY");
  CHECK(cost["amount"].GetDouble() == static_cast<double>(tokens));  // a token costs 1
  CHECK_THAT(f.err, Catch::Contains("; tokens " + std::to_string(tokens) + ", estimated cost CNY " +
                                    std::to_string(tokens) + ".0000 (prices of 2031-01-02)"));
}

namespace {

// A budget stops dispatch within one wave, in `mode`, with `limit` (a budget flag and its value, which
// with kUnitPrices is also a token count); then --resume without a limit finishes every topic once.
void budget_stops_then_resumes(const std::string& mode, const std::vector<std::string>& limit_args,
                               std::int64_t limit) {
  constexpr int kConcurrency = 4;
  constexpr int kTopics = 80;
  // Each answer is about 100 tokens: the limit is crossed after a few requests, long before the end.
  Simulator sim({"--content-bytes", "400", "--latency-ms", "20"});
  TempDir dir;
  std::string topics;
  for (int i = 10; i < 10 + kTopics; ++i) topics += "budget topic " + std::to_string(i) + "\n";
  write_text(dir / "topics.txt", topics);
  write_text(dir / "prompts.txt", kBareTopicPrompt);
  write_text(dir / "prices.json", kUnitPrices);
  std::vector<std::string> args = {"--topics-file", (dir / "topics.txt").string(), "--no-search", "--prompt-file",
                                   (dir / "prompts.txt").string(), "--price-file", (dir / "prices.json").string(),
                                   "--output", (dir / "report.json").string(), "--mode", mode, "--concurrency",
                                   std::to_string(kConcurrency)};
  std::vector<std::string> first = args;
  first.insert(first.end(), limit_args.begin(), limit_args.end());
  const Finished stopped = run_cli(sim, dir, first);
  INFO("first run stderr:\n" << stopped.err.substr(0, 4000));
  REQUIRE(stopped.status == 3);
  const rapidjson::Document report = parse_json(read_text(dir / "report.json"));
  CHECK_THAT(abort_reason(report), Catch::StartsWith("budget"));

  // When was the limit crossed? Every request (one per topic: --no-search, no retries) used at least
  // `least` tokens, so the limit was reached by the ceil(limit / least)-th finished request at the
  // latest; after it, only the attempts then in flight may have been sent: at most one per slot.
  std::int64_t least = INT64_MAX;
  std::int64_t used = 0;
  std::size_t succeeded = 0;
  std::size_t unfinished = 0;
  for (const auto& r : report["results"].GetArray()) {
    const std::string status = r["status"].GetString();
    if (status == "succeeded") {
      ++succeeded;
      least = std::min(least, r["usage"]["total_tokens"].GetInt64());
      used += r["usage"]["total_tokens"].GetInt64();
    } else {
      CHECK(status == "cancelled");
      ++unfinished;
    }
  }
  REQUIRE(succeeded > 0);
  const std::int64_t crossed_by = (limit + least - 1) / least;
  const std::int64_t sent = sim.requests_total();
  std::cerr << "--mode " << mode << " " << limit_args.front() << ": " << sent << " requests, the limit crossed by the "
            << crossed_by << "th at the latest\n";
  CHECK(used >= limit);                                   // it was the budget that stopped the run
  CHECK(static_cast<std::size_t>(sent) == succeeded);    // nothing sent that did not finish
  CHECK(sent <= crossed_by + kConcurrency);               // within one wave of in-flight attempts
  const auto& summary = report["summary"];
  const std::int64_t not_read = summary["not_read"].IsInt64() ? summary["not_read"].GetInt64() : 0;
  CHECK(succeeded + unfinished + static_cast<std::size_t>(not_read) == static_cast<std::size_t>(kTopics));
  CHECK(unfinished + static_cast<std::size_t>(not_read) > 0);

  // --resume with a larger budget (the budget counts the restored records: the whole run's).
  std::vector<std::string> resumed = args;
  resumed.insert(resumed.end(), {"--resume", limit_args.front(), std::to_string(limit * 1000)});
  const Finished done = run_cli(sim, dir, resumed);
  INFO("resumed run stderr:\n" << done.err.substr(0, 4000));
  REQUIRE(done.status == 0);
  const rapidjson::Document final_report = parse_json(read_text(dir / "report.json"));
  std::map<std::int64_t, int> ids;
  for (const auto& r : final_report["results"].GetArray()) {
    CHECK(std::string(r["status"].GetString()) == "succeeded");
    ++ids[r["id"].GetInt64()];
  }
  CHECK(ids.size() == static_cast<std::size_t>(kTopics));
  for (const auto& [id, n] : ids) {
    INFO("id " << id);
    CHECK(n == 1);
  }
  // Every topic sent once over both runs: nothing was sent twice.
  CHECK(sim.requests_total() == kTopics);
}

}  // namespace

TEST_CASE("a token budget stops dispatch within one wave with exit 3 and --resume with a larger budget finishes",
          "[cost][budget][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  budget_stops_then_resumes(mode, {"--max-tokens-total", "1000"}, 1000);
}

TEST_CASE("a cost budget stops dispatch within one wave with exit 3 and --resume with a larger budget finishes",
          "[cost][budget][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  budget_stops_then_resumes(mode, {"--max-cost", "1000"}, 1000);
}
