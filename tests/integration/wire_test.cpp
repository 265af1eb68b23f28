// What goes on the wire, proven on the simulator's recorded requests: every model and search setting,
// the Web Search API as the search step, both API flavours, the headers, the key and base URL from the
// environment, the documented models (README "Talking to the platform"). Each runs in every mode.
#include <catch2/catch.hpp>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, ...

namespace {

std::string text(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

struct Run {
  TempDir dir;
  std::unique_ptr<Subprocess> process;

  std::filesystem::path report() const { return dir / "report.json"; }

  // The supervisor with `args` after the common ones; `env` added to the test environment (base URL
  // and key from supervisor_spawn_options unless `args` or `env` give them).
  int run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
          const std::string& key = kTestKey) {
    std::vector<std::string> argv = {
        supervisor_path(), "--output", report().string(), "--log-file", (dir / "run.log").string(),
        "--delay",         "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions o = supervisor_spawn_options(dir.path(), key);
    for (const auto& [name, value] : env) o.env[name] = value;
    process = std::make_unique<Subprocess>(argv, o);
    return process->exit_code(120s);
  }

  rapidjson::Document read_report() const {
    rapidjson::Document d;
    d.Parse(read_text(report()).c_str());
    REQUIRE_FALSE(d.HasParseError());
    return d;
  }
};

// The chat requests and web searches the simulator saw, in order.
struct Seen {
  std::vector<RecordedRequest> chat;
  std::vector<RecordedRequest> web_search;

  explicit Seen(const Simulator& sim) {
    for (auto& r : sim.recent_requests()) (r.is_web_search() ? web_search : chat).push_back(std::move(r));
  }
};

}  // namespace

TEST_CASE("every model and search setting, and the headers, reach the wire", "[wire]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  Simulator sim;
  Run r;
  REQUIRE(r.run({"--base-url",
                 sim.base_url(),
                 "--mode",
                 mode,
                 "--topics",
                 "tides",
                 "--temperature",
                 "0.3",
                 "--top-p",
                 "0.8",
                 "--max-tokens",
                 "1000",
                 "--thinking",
                 "enabled",
                 "--search-engine",
                 "search_pro",
                 "--search-recency",
                 "oneDay",
                 "--search-domain",
                 "www.example.com",
                 "--search-count",
                 "7",
                 "--search-content-size",
                 "high",
                 "--accept-language",
                 "en-US,en"}) == 0);

  const Seen seen(sim);
  REQUIRE(seen.chat.size() == 2);
  CHECK(seen.web_search.empty());
  for (const auto& req : seen.chat) {
    CHECK_THAT(req.user_agent, Catch::StartsWith("concurrent_bigmodel/"));
    CHECK(req.accept_language == "en-US,en");
    const auto body = req.json();
    CHECK(body["temperature"].GetDouble() == 0.3);
    CHECK(body["top_p"].GetDouble() == 0.8);
    CHECK(body["max_tokens"].GetInt() == 1000);
    CHECK(text(body["thinking"]["type"]) == "enabled");
  }
  const auto search = seen.chat[0].json();
  const auto& ws = search["tools"][0]["web_search"];
  CHECK(text(ws["search_engine"]) == "search_pro");
  CHECK(text(ws["search_recency_filter"]) == "oneDay");
  CHECK(text(ws["search_domain_filter"]) == "www.example.com");
  CHECK(ws["count"].GetInt() == 7);
  CHECK(text(ws["content_size"]) == "high");

  // The record keeps each step's request_id (as sent) and the platform's answer id.
  const auto report = r.read_report();
  const auto& steps = report["results"][0]["steps"];
  REQUIRE(steps.Size() == 2);
  CHECK(text(steps[0]["request_id"]) == text(search["request_id"]));
  CHECK(text(steps[1]["request_id"]) == text(seen.chat[1].json()["request_id"]));
  CHECK_THAT(text(steps[0]["response_id"]), Catch::StartsWith("2"));
  CHECK(report["results"][0]["sources"].Size() == 7);
}

TEST_CASE(
    "thinking auto sends no thinking field, and response_format json fails a non-JSON analysis as "
    "invalid_json",
    "[wire]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  Simulator sim;
  Run r;
  // The simulator answers prose: not the JSON object that was asked for.
  CHECK(r.run({"--base-url", sim.base_url(), "--mode", mode, "--topics", "tides", "--no-search", "--thinking",
               "auto", "--response-format", "json", "--max-retries", "2"}) == 1);
  const Seen seen(sim);
  REQUIRE(seen.chat.size() == 1);  // task_fatal: not retried
  const auto body = seen.chat[0].json();
  CHECK_FALSE(body.HasMember("thinking"));
  CHECK(text(body["response_format"]["type"]) == "json_object");
  const auto report = r.read_report();
  const auto& result = report["results"][0];
  CHECK(text(result["error"]["kind"]) == "invalid_json");
  CHECK(text(result["error"]["class"]) == "task_fatal");
  // The failed step's error names its request_id.
  CHECK_THAT(text(result["error_message"]),
             Catch::Contains("analysis step (request_id " + text(body["request_id"]) + ")"));
}

TEST_CASE("search via the Web Search API is one web_search call, no chat call, its results in the prompt",
          "[wire][web_search]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  Simulator sim;
  Run r;
  // 80 characters of three bytes each: the query is cut to 70 characters (the simulator refuses more).
  std::string topic;
  for (int i = 0; i < 80; ++i) topic += "\xE6\xBD\xAE";
  REQUIRE(r.run({"--base-url", sim.base_url(), "--mode", mode, "--topics", topic, "--search-via", "api",
                 "--search-engine", "search_pro_quark", "--search-recency", "oneWeek", "--search-count",
                 "4"}) == 0);

  const Seen seen(sim);
  REQUIRE(seen.web_search.size() == 1);
  REQUIRE(seen.chat.size() == 1);  // the analysis only
  const auto search = seen.web_search[0].json();
  const std::string query = text(search["search_query"]);
  CHECK(query == topic.substr(0, 70 * 3));
  CHECK(text(search["search_engine"]) == "search_pro_quark");
  CHECK(text(search["search_recency_filter"]) == "oneWeek");
  CHECK(search["count"].GetInt() == 4);
  CHECK_THAT(seen.web_search[0].user_agent, Catch::StartsWith("concurrent_bigmodel/"));
  // The analysis prompt carries the results (the simulator titles them "Result N about <query>").
  const auto analysis = seen.chat[0].json();
  CHECK_FALSE(analysis.HasMember("tools"));
  std::string prompt;
  for (const auto& m : analysis["messages"].GetArray()) prompt += text(m["content"]);
  CHECK_THAT(prompt, Catch::Contains("Result 4 about " + query));

  const auto report = r.read_report();
  const auto& result = report["results"][0];
  CHECK(result["sources"].Size() == 4);
  const auto& step = result["steps"][0];
  CHECK(text(step["name"]) == "search");
  CHECK(text(step["model"]) == "search_pro_quark");
  CHECK(step["usage"]["total_tokens"].GetInt() == 0);
  CHECK(text(step["request_id"]) == text(search["request_id"]));
  CHECK_FALSE(text(step["response_id"]).empty());
}

TEST_CASE("the openai flavour sends only OpenAI's fields: a strict OpenAI server answers", "[wire][flavor]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  Simulator strict({"--strict-openai"});
  Run ok;
  REQUIRE(ok.run({"--base-url", strict.base_url(), "--mode", mode, "--topics", "tides", "--no-search",
                  "--api-flavor", "openai", "--thinking", "enabled", "--response-format", "text"}) == 0);
  const Seen seen(strict);
  REQUIRE(seen.chat.size() == 1);
  const auto body = seen.chat[0].json();
  CHECK_FALSE(body.HasMember("thinking"));
  CHECK_FALSE(body.HasMember("request_id"));
  CHECK_FALSE(body.HasMember("tools"));
}

TEST_CASE("the bigmodel flavour against a strict OpenAI server does not succeed", "[wire][flavor]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  Simulator sim({"--strict-openai"});
  Run r;
  // The 400 "Unrecognized request argument" is classified run-fatal (with a hint at --api-flavor openai)
  // on the errors branch; here only the failure itself is asserted.
  CHECK(r.run({"--base-url", sim.base_url(), "--mode", mode, "--topics", "tides", "--no-search"}) != 0);
  CHECK(sim.by_status("400") >= 1);
}

TEST_CASE("the openai flavour with a search step is refused before anything is sent", "[wire][flavor]") {
  Simulator sim;
  Run r;
  CHECK(r.run({"--base-url", sim.base_url(), "--topics", "tides", "--api-flavor", "openai"}) == 2);
  CHECK_THAT(r.process->err(), Catch::Contains("--api-flavor openai") && Catch::Contains("--no-search"));
  CHECK(sim.recent_requests().empty());
}

TEST_CASE(
    "the Python tool's glm-4.5-aq is refused before anything is sent, and --allow-unlisted-model sends it",
    "[wire][models]") {
  Simulator sim;
  Run r;
  CHECK(r.run({"--base-url", sim.base_url(), "--topics", "tides", "--chat-model", "glm-4.5-aq"}) == 2);
  CHECK_THAT(r.process->err(), Catch::Contains("--chat-model: 'glm-4.5-aq'") &&
                                   Catch::Contains("glm-4.5-air") &&
                                   Catch::Contains("--allow-unlisted-model"));
  Run tool;
  CHECK(tool.run({"--base-url", sim.base_url(), "--topics", "tides", "--tool-model", "glm-4.5-aq"}) == 2);
  CHECK_THAT(tool.process->err(), Catch::Contains("--tool-model"));
  CHECK(sim.recent_requests().empty());

  Run allowed;
  allowed.run({"--base-url", sim.base_url(), "--topics", "tides", "--no-search", "--chat-model", "glm-4.5-aq",
               "--allow-unlisted-model"});
  const Seen seen(sim);
  REQUIRE(seen.chat.size() == 1);
  CHECK(text(seen.chat[0].json()["model"]) == "glm-4.5-aq");
}

TEST_CASE("out-of-range settings are refused naming the flag, before anything is sent", "[wire][settings]") {
  Simulator sim;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--temperature", "1.5"}, "--temperature"},
      {{"--top-p", "0"}, "--top-p"},
      {{"--max-tokens", "131073"}, "--max-tokens"},
      {{"--thinking", "sometimes"}, "--thinking"},
      {{"--search-count", "51"}, "--search-count"},
      {{"--search-engine", "search-prime-aqdr"}, "--search-engine"},
      {{"--search-recency", "oneHour"}, "--search-recency"},
      {{"--search-via", "mcp"}, "--search-via"},
      {{"--response-format", "yaml"}, "--response-format"},
      {{"--api-flavor", "anthropic"}, "--api-flavor"},
  };
  for (const auto& [flags, name] : cases) {
    Run r;
    std::vector<std::string> args = {"--base-url", sim.base_url(), "--topics", "tides"};
    args.insert(args.end(), flags.begin(), flags.end());
    INFO(name);
    CHECK(r.run(args) == 2);
    CHECK_THAT(r.process->err(), Catch::Contains(name));
  }
  CHECK(sim.recent_requests().empty());
}

TEST_CASE("ZAI_API_KEY and ZAI_BASE_URL are honoured, after the BigModel and Zhipu names", "[wire][env]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  Simulator sim({"--api-key", "zai-key-123"});
  Run r;
  // No --base-url and no BIGMODEL_API_KEY: both come from the ZAI_* variables.
  CHECK(r.run({"--mode", mode, "--topics", "tides", "--no-search"},
              {{"ZAI_API_KEY", "zai-key-123"}, {"ZAI_BASE_URL", sim.base_url()}}, "") == 0);
  CHECK(sim.requests_total() == 1);

  // BIGMODEL_API_KEY comes first: its (wrong) key is the one sent.
  Run first;
  CHECK(first.run({"--mode", mode, "--topics", "tides", "--no-search"},
                  {{"ZAI_API_KEY", "zai-key-123"}, {"ZAI_BASE_URL", sim.base_url()}}, "bigmodel-key") == 3);
  CHECK(sim.by_status("401") == 1);
}
