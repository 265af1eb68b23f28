// LangSmith tracing as its users see it: the supervisor against the simulator's /runs/batch, which
// validates every run (ids, trace ids, dotted orders, parent links, times) and keeps them for the
// checks here. A second simulator instance plays a LangSmith that hangs or fails.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, eventually, ...
namespace fs = std::filesystem;

namespace {

constexpr const char* kBigModelKey = "sk-test-CANARY-5f3a9c1e";
constexpr const char* kLangSmithKey = "lsv2-test-CANARY-8d2e71b4";
constexpr const char* kProject = "cbm-tests";

std::string str(const rapidjson::Value& v, const char* name) {
  const auto it = v.FindMember(name);
  return it != v.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

// One traced supervisor run in its own directory.
class TracedRun {
 public:
  TracedRun(const Simulator& bigmodel, const std::string& langsmith_endpoint, const std::vector<std::string>& topics,
            const std::vector<std::string>& args, const std::map<std::string, std::string>& langsmith_env = {}) {
    std::string text;
    for (const auto& t : topics) text += t + "\n";
    write_text(dir_ / "topics.txt", text);
    std::vector<std::string> argv = {cbm::test::supervisor_path(), "--base-url", bigmodel.base_url(), "--output",
                                     report_path().string(), "--log-file", log_path().string(), "--delay", "0",
                                     "--topics-file", (dir_ / "topics.txt").string(), "--quiet"};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions opts;
    opts.output_dir = dir_.path();
    opts.cwd = dir_.path();
    opts.env = {{"BIGMODEL_API_KEY", kBigModelKey},
                {"LANGSMITH_TRACING", "true"},
                {"LANGSMITH_API_KEY", kLangSmithKey},
                {"LANGSMITH_ENDPOINT", langsmith_endpoint},
                {"LANGSMITH_PROJECT", kProject}};
    for (const auto& [name, value] : langsmith_env) opts.env[name] = value;
    opts.unset_env = {"ZHIPUAI_API_KEY",      "BIGMODEL_BASE_URL", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2",
                      "LANGCHAIN_TRACING",    "LANGCHAIN_API_KEY", "LANGCHAIN_ENDPOINT",   "LANGCHAIN_PROJECT",
                      "LANGSMITH_WORKSPACE_ID", "LANGCHAIN_WORKSPACE_ID", "LANGSMITH_HIDE_INPUTS",
                      "LANGSMITH_HIDE_OUTPUTS", "LANGSMITH_HIDE_METADATA", "LANGSMITH_TRACING_SAMPLING_RATE"};
    for (const auto& [name, value] : langsmith_env) std::erase(opts.unset_env, name);
    started_ = std::chrono::steady_clock::now();
    process_ = std::make_unique<Subprocess>(argv, opts);
  }

  Subprocess& process() { return *process_; }
  std::chrono::steady_clock::time_point started() const { return started_; }
  fs::path report_path() const { return dir_ / "report.json"; }
  fs::path log_path() const { return dir_ / "run.log"; }
  std::string log() const { return read_text(log_path()); }
  std::string diagnostics() const { return "stderr:\n" + process_->err() + "\nlog:\n" + log(); }

  // topic -> (status, analysis, steps' usage by step name)
  struct Row {
    std::string status;
    std::string analysis;
    int attempts = 0;
    std::map<std::string, std::int64_t> step_tokens;  // of the final attempt
  };
  std::map<std::string, Row> report() const {
    rapidjson::Document doc;
    const std::string text = read_text(report_path());
    doc.Parse(text.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    std::map<std::string, Row> rows;
    for (const auto& r : doc["results"].GetArray()) {
      Row row{str(r, "status"), str(r, "analysis"), r["attempts"].GetInt(), {}};
      for (const auto& s : r["steps"].GetArray()) row.step_tokens[str(s, "name")] = s["usage"]["total_tokens"].GetInt64();
      rows[str(r, "topic")] = row;
    }
    return rows;
  }

 private:
  TempDir dir_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<Subprocess> process_;
};

std::string langsmith_url(const Simulator& sim) { return "http://127.0.0.1:" + std::to_string(sim.port()); }

rapidjson::Document stored_runs(const Simulator& langsmith) {
  rapidjson::Document d;
  d.Parse(cbm::test::http_request("GET", langsmith_url(langsmith) + "/runs").body.c_str());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

// One attempt's trace as stored: its root and its llm children.
struct Trace {
  const rapidjson::Value* root = nullptr;
  std::vector<const rapidjson::Value*> children;
};

// The traces in `runs`, each checked for shape: a chain root that ended, llm children linked to it.
std::vector<Trace> traces_of(const rapidjson::Value& runs) {
  std::map<std::string, Trace> by_root;
  for (const auto& run : runs.GetArray()) {
    CHECK(str(run, "session_name") == kProject);
    if (!run.HasMember("parent_run_id")) {
      CHECK(str(run, "run_type") == "chain");
      CHECK(str(run, "trace_id") == str(run, "id"));
      CHECK(run.HasMember("end_time"));
      by_root[str(run, "id")].root = &run;
    }
  }
  for (const auto& run : runs.GetArray()) {
    if (!run.HasMember("parent_run_id")) continue;
    const std::string parent = str(run, "parent_run_id");
    REQUIRE(by_root.count(parent) == 1);
    const rapidjson::Value& root = *by_root[parent].root;
    CHECK(str(run, "run_type") == "llm");
    CHECK(str(run, "trace_id") == str(root, "id"));
    CHECK(str(run, "dotted_order").starts_with(str(root, "dotted_order") + "."));
    CHECK(run.HasMember("end_time"));
    const auto& meta = run["extra"]["metadata"];
    CHECK(str(meta, "ls_provider") == "zhipuai");
    CHECK_FALSE(str(meta, "ls_model_name").empty());
    const auto& usage = meta["usage_metadata"];
    CHECK(usage["total_tokens"].GetInt64() == usage["input_tokens"].GetInt64() + usage["output_tokens"].GetInt64());
    const auto& messages = run["inputs"]["messages"];
    REQUIRE(messages.Size() == 2);
    CHECK(str(messages[1], "role") == "user");
    CHECK(str(messages[1], "content").find(str(root["inputs"], "topic")) != std::string::npos);
    by_root[parent].children.push_back(&run);
  }
  std::vector<Trace> out;
  for (auto& [id, t] : by_root) out.push_back(t);
  return out;
}

std::string topic_of(const Trace& t) { return str((*t.root)["inputs"], "topic"); }

// The count in the supervisor's closing "langsmith: ... N dropped" line; -1 when there is none.
long dropped_in(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(langsmith: \d+ run records sent in \d+ batches[^\n]*; (\d+) dropped)"))) {
    return -1;
  }
  return std::stol(m[1]);
}

}  // namespace

TEST_CASE("every attempt of a run arrives in LangSmith as one complete, well-formed trace", "[langsmith]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  Simulator bigmodel;
  Simulator langsmith({"--langsmith-api-key", kLangSmithKey});
  std::vector<std::string> topics;
  for (int i = 0; i < 9; ++i) topics.push_back("traced topic " + std::to_string(i));
  const std::string flaky = "flaky topic [[fault:500_1234*1]]";
  topics.push_back(flaky);
  TracedRun run(bigmodel, langsmith_url(langsmith), topics, {"--mode", mode, "--concurrency", "4"});
  const int status = run.process().exit_code(60s);
  INFO(run.diagnostics());
  REQUIRE(status == 0);

  const auto report = run.report();
  const rapidjson::Document stored = stored_runs(langsmith);
  INFO("rejections: " << stored["rejected"].GetUint64());
  CHECK(stored["rejected"].GetUint64() == 0);
  CHECK(dropped_in(run.log()) == 0);
  CHECK(run.log().find(kLangSmithKey) == std::string::npos);

  const std::vector<Trace> traces = traces_of(stored["runs"]);
  std::size_t attempts_reported = 0;
  for (const auto& [topic, row] : report) attempts_reported += static_cast<std::size_t>(row.attempts);
  CHECK(report.at(flaky).attempts > 1);
  REQUIRE(traces.size() == attempts_reported);  // one trace per attempt
  std::map<std::string, int> attempts;
  for (const Trace& t : traces) {
    const std::string topic = topic_of(t);
    REQUIRE(report.count(topic) == 1);
    ++attempts[topic];
    const rapidjson::Value& root = *t.root;
    if (root.HasMember("error")) {
      // One of the flaky topic's failed attempts: the call that got HTTP 500 code 1234 is its last.
      CHECK(topic == flaky);
      CHECK_THAT(str(root, "error"), Catch::Contains("HTTP 500 code 1234"));
      CHECK_FALSE(root.HasMember("outputs"));
      REQUIRE_FALSE(t.children.empty());
      CHECK_THAT(str(*t.children.back(), "error"), Catch::Contains("HTTP 500 code 1234"));
      CHECK_FALSE(t.children.back()->HasMember("outputs"));
      continue;
    }
    CHECK(str(root["outputs"], "analysis") == report.at(topic).analysis);
    REQUIRE(t.children.size() == 2);
    CHECK(str(*t.children[0], "name") == "search");
    CHECK(str(*t.children[1], "name") == "analysis");
    for (const rapidjson::Value* child : t.children) {
      const std::string name = str(*child, "name");
      REQUIRE(report.at(topic).step_tokens.count(name) == 1);
      CHECK((*child)["extra"]["metadata"]["usage_metadata"]["total_tokens"].GetInt64() ==
            report.at(topic).step_tokens.at(name));
      CHECK_FALSE(child->HasMember("error"));
      CHECK_FALSE(str((*child)["outputs"]["messages"][0], "content").empty());
    }
  }
  CHECK(attempts.size() == 10);
  for (const auto& [topic, n] : attempts) CHECK(n == report.at(topic).attempts);
}

TEST_CASE("LangSmith's workspace, hiding and sampling settings act as in its SDK, and llm runs name the model settings",
          "[langsmith][config]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  Simulator bigmodel;
  std::vector<std::string> topics;
  for (int i = 0; i < 6; ++i) topics.push_back("setting topic " + std::to_string(i));
  const std::vector<std::string> args = {"--mode", mode, "--concurrency", "3"};

  SECTION("an org-scoped key's workspace goes as X-Tenant-Id; without it every batch is refused") {
    Simulator langsmith({"--langsmith-workspace", "ws-7"});
    TracedRun without(bigmodel, langsmith_url(langsmith), topics, args);
    REQUIRE(without.process().exit_code(60s) == 0);
    CHECK(stored_runs(langsmith)["runs"].Size() == 0);
    CHECK(dropped_in(without.log()) > 0);
    TracedRun with(bigmodel, langsmith_url(langsmith), topics, args, {{"LANGSMITH_WORKSPACE_ID", "ws-7"}});
    REQUIRE(with.process().exit_code(60s) == 0);
    INFO(with.diagnostics());
    CHECK(dropped_in(with.log()) == 0);
    CHECK(traces_of(stored_runs(langsmith)["runs"]).size() == topics.size());
  }
  SECTION("hidden inputs and outputs are sent as {}, the traces otherwise whole") {
    Simulator langsmith;
    TracedRun run(bigmodel, langsmith_url(langsmith), topics, args,
                  {{"LANGSMITH_HIDE_INPUTS", "true"}, {"LANGSMITH_HIDE_OUTPUTS", "TRUE"}});
    REQUIRE(run.process().exit_code(60s) == 0);
    const rapidjson::Document stored = stored_runs(langsmith);
    REQUIRE(stored["runs"].Size() == topics.size() * 3);  // a root and two llm runs each
    for (const auto& r : stored["runs"].GetArray()) {
      CHECK(r["inputs"].ObjectEmpty());
      CHECK(r["outputs"].ObjectEmpty());
      CHECK(r.HasMember("end_time"));
    }
    CHECK(run.log().find("inputs hidden, outputs hidden") != std::string::npos);
  }
  SECTION("llm runs carry ls_temperature and ls_max_tokens, and the search run its sources") {
    Simulator langsmith;
    TracedRun run(bigmodel, langsmith_url(langsmith), {"one topic"}, args);
    REQUIRE(run.process().exit_code(60s) == 0);
    const rapidjson::Document stored = stored_runs(langsmith);
    const std::vector<Trace> traces = traces_of(stored["runs"]);
    REQUIRE(traces.size() == 1);
    REQUIRE(traces[0].children.size() == 2);
    for (const rapidjson::Value* child : traces[0].children) {
      const auto& meta = (*child)["extra"]["metadata"];
      CHECK(meta["ls_temperature"].IsNumber());
      CHECK(meta["ls_max_tokens"].GetInt() > 0);
    }
    const auto& search_out = (*traces[0].children[0])["outputs"];
    REQUIRE(search_out.HasMember("sources"));
    REQUIRE(search_out["sources"].Size() > 0);
    CHECK_THAT(str(search_out["sources"][0], "link"), Catch::StartsWith("http"));
    CHECK_FALSE((*traces[0].children[1])["outputs"].HasMember("sources"));
  }
  SECTION("a sampling rate sends whole traces: none at 0, some but not all at 0.5") {
    Simulator none;
    TracedRun zero(bigmodel, langsmith_url(none), topics, args, {{"LANGSMITH_TRACING_SAMPLING_RATE", "0"}});
    REQUIRE(zero.process().exit_code(60s) == 0);
    CHECK(stored_runs(none)["runs"].Size() == 0);
    CHECK(zero.report().size() == topics.size());

    // 40 traces each drawn at 0.5: all or none of them sent has odds of 2 in 2^40.
    std::vector<std::string> many;
    for (int i = 0; i < 40; ++i) many.push_back("sampled topic " + std::to_string(i));
    Simulator some;
    TracedRun half(bigmodel, langsmith_url(some), many, args, {{"LANGSMITH_TRACING_SAMPLING_RATE", "0.5"}});
    REQUIRE(half.process().exit_code(60s) == 0);
    const rapidjson::Document stored = stored_runs(some);
    const std::vector<Trace> traces = traces_of(stored["runs"]);
    CHECK(traces.size() > 0);
    CHECK(traces.size() < many.size());
    for (const Trace& t : traces) CHECK(t.children.size() == 2);  // children follow their root
    CHECK(stored["runs"].Size() == traces.size() * 3);
  }
  SECTION("a sampling rate outside [0,1] is a usage error naming the variable") {
    Simulator langsmith;
    TracedRun bad(bigmodel, langsmith_url(langsmith), topics, args, {{"LANGSMITH_TRACING_SAMPLING_RATE", "1.5"}});
    CHECK(bad.process().exit_code(60s) == 2);
    CHECK_THAT(bad.process().err(), Catch::Contains("LANGSMITH_TRACING_SAMPLING_RATE: '1.5'"));
  }
}

TEST_CASE("a worker killed mid-task still gets its trace closed with the crash", "[langsmith][crash]") {
  Simulator bigmodel;
  Simulator langsmith;
  const std::string boom = "boom [[fault:kill_client*1]]";
  TracedRun run(bigmodel, langsmith_url(langsmith), {"calm topic", boom}, {"--concurrency", "2"});
  const int status = run.process().exit_code(60s);
  INFO(run.diagnostics());
  REQUIRE(status == 0);
  const rapidjson::Document stored = stored_runs(langsmith);
  CHECK(stored["rejected"].GetUint64() == 0);
  const auto report = run.report();
  CHECK(report.at(boom).attempts > 1);
  const std::vector<Trace> traces = traces_of(stored["runs"]);
  REQUIRE(traces.size() == static_cast<std::size_t>(report.at(boom).attempts + 1));
  int crashed = 0;
  for (const Trace& t : traces) {
    if (!t.root->HasMember("error")) continue;
    ++crashed;
    CHECK(topic_of(t) == boom);
    CHECK_THAT(str(*t.root, "error"), Catch::StartsWith("crash: ") && Catch::Contains("SIGKILL"));
    CHECK(t.children.empty());  // the worker died with its calls' records
  }
  CHECK(crashed == report.at(boom).attempts - 1);
}

TEST_CASE("a LangSmith that hangs, fails or refuses costs the run nothing but its traces", "[langsmith][outage]") {
  const std::string outage = GENERATE("hang", "500", "refuse");
  INFO("LangSmith outage: " << outage);
  Simulator bigmodel;
  std::unique_ptr<Simulator> langsmith;
  std::string endpoint = "http://127.0.0.1:1";  // nothing listens on tcpmux: connection refused
  if (outage != "refuse") {
    langsmith = std::make_unique<Simulator>(std::vector<std::string>{"--runs-fault", outage});
    endpoint = langsmith_url(*langsmith);
  }
  std::vector<std::string> topics;
  for (int i = 0; i < 10; ++i) topics.push_back("outage topic " + std::to_string(i));
  TracedRun run(bigmodel, endpoint, topics, {"--concurrency", "4"});
  // A hang guard, not a performance bound: the run's end waits at most a few seconds for LangSmith.
  const int status = run.process().exit_code(20s);
  INFO(run.diagnostics());
  CHECK(status == 0);
  const auto report = run.report();
  REQUIRE(report.size() == 10);
  for (const auto& [topic, row] : report) CHECK(row.status == "succeeded");
  CHECK(dropped_in(run.log()) > 0);
  CHECK(run.log().find(kLangSmithKey) == std::string::npos);
}

TEST_CASE("tracing on without a key for a remote LangSmith is a usage error naming the variable",
          "[langsmith][config]") {
  TempDir dir;
  SpawnOptions opts;
  opts.output_dir = dir.path();
  opts.cwd = dir.path();
  opts.env = {{"BIGMODEL_API_KEY", kBigModelKey}, {"LANGSMITH_TRACING", "true"}};
  opts.unset_env = {"LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGSMITH_ENDPOINT", "LANGCHAIN_ENDPOINT"};
  Subprocess p({cbm::test::supervisor_path(), "--topics", "x", "--base-url", "http://127.0.0.1:1/v4"}, opts);
  CHECK(p.exit_code() == 2);
  CHECK_THAT(p.err(), Catch::Contains("LANGSMITH_API_KEY"));
}
