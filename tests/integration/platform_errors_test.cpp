// The platform's error table end to end (docs/protocol.md, "Errors"), in every mode against the
// simulator: which requests were sent (its stats) and what the report says. Each code comes from the
// simulator's own table, with the HTTP status and message the platform sends with it.
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;
namespace fs = std::filesystem;

namespace {

constexpr int kConcurrency = 4;

// The analysis prompt is the bare topic, so the simulator's stats by topic count requests per topic.
constexpr const char* kBareTopicPrompt = "[analysis.user]\n{topic}\n";

// One CLI run in its own directory: --topics-file, a report, --no-search, --delay 0 and `args`.
class Run {
 public:
  Run(const Simulator& sim, const std::vector<std::string>& topics, std::vector<std::string> args) {
    std::string text;
    for (const auto& t : topics) text += t + "\n";
    write_text(dir_ / "topics.txt", text);
    write_text(dir_ / "prompts.txt", kBareTopicPrompt);
    std::vector<std::string> argv = {supervisor_path(), "--base-url", sim.base_url(), "--topics-file",
                                     (dir_ / "topics.txt").string(), "--output", (dir_ / "report.json").string(),
                                     "--log-file", (dir_ / "run.log").string(), "--delay", "0", "--no-search",
                                     "--quiet", "--prompt-file", (dir_ / "prompts.txt").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<Subprocess>(argv, supervisor_spawn_options(dir_.path()));
  }

  // Waits for the exit (bounded: a hang fails the test) and reads the report.
  int finish() {
    const int status = process_->exit_code(60s);
    const std::string text = read_text(dir_ / "report.json");
    report_.Parse(text.c_str());
    INFO(diagnostics());
    REQUIRE_FALSE(report_.HasParseError());
    return status;
  }

  const rapidjson::Value& record(const std::string& topic) const {
    for (const auto& r : report_["results"].GetArray()) {
      if (topic == r["topic"].GetString()) return r;
    }
    FAIL("no record for topic '" << topic << "'");
    throw std::logic_error("unreachable");
  }
  std::string abort_reason() const {
    const auto& r = report_["summary"]["abort_reason"];
    return r.IsString() ? r.GetString() : "";
  }
  std::string diagnostics() const {
    return "stderr:\n" + process_->err() + "\nlog:\n" + read_text(dir_ / "run.log");
  }
  std::string log() const { return read_text(dir_ / "run.log"); }

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  rapidjson::Document report_;
};

std::string status_of(const rapidjson::Value& record) { return record["status"].GetString(); }
std::string kind_of(const rapidjson::Value& record) {
  return record.HasMember("error") ? record["error"]["kind"].GetString() : "";
}

std::vector<std::int64_t> topic_arrivals(const rapidjson::Document& stats, const std::string& topic) {
  std::vector<std::int64_t> out;
  const auto& all = stats["topic_arrivals_unix_ms"];
  if (!all.HasMember(topic.c_str())) return out;
  for (const auto& ms : all[topic.c_str()].GetArray()) out.push_back(ms.GetInt64());
  return out;
}

std::vector<std::string> numbered(const std::string& stem, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(stem + " " + std::to_string(i));
  return out;
}

}  // namespace

// A run of 20 topics all carrying `fault`: exit 3 naming `code`, at most concurrency + 2 requests sent.
void require_run_fatal(const Simulator& sim, const std::string& fault, const std::string& code,
                       std::vector<std::string> args) {
  sim.reset_stats();
  args.insert(args.end(), {"--concurrency", std::to_string(kConcurrency), "--max-retries", "5"});
  Run run(sim, numbered("[[fault:" + fault + "]] topic", 20), args);
  REQUIRE(run.finish() == 3);
  INFO(run.diagnostics());
  CHECK_THAT(run.abort_reason(), Catch::Contains("code " + code));
  CHECK(sim.requests_total() <= kConcurrency + 2);
}

TEST_CASE("every run-fatal code of the table stops the run with exit 3, naming it", "[errors][fatal]") {
  Simulator sim;
  for (const char* code : {"1000", "1001", "1002", "1003", "1004", "1110", "1111", "1112", "1113", "1121", "1211",
                           "1212", "1220", "1221", "1222", "1304", "1309", "1311", "1313"}) {
    INFO("code " << code);
    require_run_fatal(sim, std::string("code_") + code, code, {"--mode", "asyncio"});
  }
}

TEST_CASE("a run-fatal code stops the run after at most concurrency + 2 requests in every mode, as a string, "
          "an integer or inside an HTTP 200 answer",
          "[errors][fatal][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  const std::string shape = GENERATE(as<std::string>{}, "", "_int", "_in200");
  const bool stream = GENERATE(false, true);
  if (stream && shape != "_in200") return;  // a stream changes only where a 200 carries the error
  INFO("--mode " << mode << ", code_1311" << shape << (stream ? " --stream" : ""));
  Simulator sim;
  std::vector<std::string> args = {"--mode", mode};
  if (stream) args.push_back("--stream");
  require_run_fatal(sim, "code_1311" + shape, "1311", args);
}

TEST_CASE("the run-fatal reason carries the platform's message", "[errors][fatal]") {
  Simulator sim;
  Run run(sim, {"[[fault:code_1113]] broke"}, {"--mode", "threading"});
  REQUIRE(run.finish() == 3);
  CHECK_THAT(run.abort_reason(), Catch::Contains("HTTP 429 code 1113") && Catch::Contains("欠费"));
}

TEST_CASE("a task-fatal code fails only its task, at once, a duplicate request_id is re-sent once",
          "[errors][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  const std::vector<std::string> codes = {"1200", "1210", "1213", "1214", "1215", "1231", "1261", "1300", "1301"};
  std::vector<std::string> topics = {"good 1", "good 2"};
  for (const auto& code : codes) topics.push_back("[[fault:code_" + code + "_int]] bad " + code);
  Run run(sim, topics, {"--mode", mode, "--concurrency", "3"});
  REQUIRE(run.finish() == 1);
  INFO(run.diagnostics());
  CHECK(status_of(run.record("good 1")) == "succeeded");
  CHECK(status_of(run.record("good 2")) == "succeeded");
  for (const auto& code : codes) {
    const std::string topic = "[[fault:code_" + code + "_int]] bad " + code;
    INFO(topic);
    const auto& r = run.record(topic);
    CHECK(status_of(r) == "failed");
    CHECK(r["attempts"].GetInt() == 1);
    CHECK(std::string(r["error"]["code"].GetString()) == code);
    CHECK(std::string(r["error"]["class"].GetString()) == "task_fatal");
    CHECK(sim.by_topic(topic) == (code == "1231" ? 2 : 1));
  }
}

TEST_CASE("a retryable code is retried and the task succeeds", "[errors][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  const std::vector<std::string> codes = {"500", "1100", "1120", "1230", "1234", "1302", "1303", "1305", "1312"};
  std::vector<std::string> topics;
  for (const auto& code : codes) topics.push_back("[[fault:code_" + code + "*1]] flaky " + code);
  Run run(sim, topics, {"--mode", mode, "--concurrency", "4"});
  REQUIRE(run.finish() == 0);
  INFO(run.diagnostics());
  for (const auto& topic : topics) {
    INFO(topic);
    CHECK(status_of(run.record(topic)) == "succeeded");
    CHECK(run.record(topic)["attempts"].GetInt() == 2);
    CHECK(sim.by_topic(topic) == 2);
  }
}

TEST_CASE("errors inside an HTTP 200 answer are classified like error statuses", "[errors][sse][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  const bool stream = GENERATE(true, false);
  INFO("--mode " << mode << (stream ? " --stream" : ""));
  Simulator sim;
  const std::vector<std::string> topics = {"[[fault:code_1302_in200*1]] retried", "[[fault:code_1301_in200]] refused",
                                           "[[fault:sse_error*1]] broken stream", "fine"};
  std::vector<std::string> args = {"--mode", mode};
  if (stream) args.push_back("--stream");
  Run run(sim, topics, args);
  REQUIRE(run.finish() == 1);
  INFO(run.diagnostics());
  CHECK(status_of(run.record(topics[0])) == "succeeded");
  CHECK(run.record(topics[0])["attempts"].GetInt() == 2);
  const auto& refused = run.record(topics[1]);
  CHECK(status_of(refused) == "failed");
  CHECK(refused["attempts"].GetInt() == 1);
  CHECK(std::string(refused["error"]["code"].GetString()) == "1301");
  CHECK(refused["error"]["http_status"].GetInt() == 200);
  CHECK(status_of(run.record(topics[2])) == "succeeded");
  CHECK(status_of(run.record(topics[3])) == "succeeded");
}

TEST_CASE("a strict OpenAI server's unknown-field answer stops the run and suggests --api-flavor openai",
          "[errors][fatal]") {
  Simulator sim;
  Run run(sim, numbered("[[fault:unrecognized_argument]] t", 10), {"--mode", "asyncio", "--concurrency", "2"});
  REQUIRE(run.finish() == 3);
  CHECK_THAT(run.abort_reason(), Catch::Contains("Unrecognized request argument") &&
                                     Catch::Contains("--api-flavor openai"));
  CHECK(sim.requests_total() <= 2 + 2);
}

TEST_CASE("a usage cap (1308) pauses every task until the reset the platform names, then the run goes on",
          "[errors][quota][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  // One slot: the capped topic goes first; everything after it must wait for the reset.
  const std::vector<std::string> topics = {"[[fault:quota_reset_2s*1]] capped", "later 1", "later 2"};
  Run run(sim, topics, {"--mode", mode, "--concurrency", "1", "--max-retries", "0"});
  REQUIRE(run.finish() == 0);
  INFO(run.diagnostics());
  const auto stats = sim.stats();
  REQUIRE(stats["quota_resets_unix_ms"].Size() == 1);
  const std::int64_t reset = stats["quota_resets_unix_ms"][0].GetInt64();
  const auto capped = topic_arrivals(stats, topics[0]);
  REQUIRE(capped.size() == 2);  // --max-retries 0: the wait did not cost the task its one attempt
  CHECK(capped[0] < reset);
  CHECK(capped[1] >= reset);
  for (const auto& topic : {topics[1], topics[2]}) {
    const auto arrivals = topic_arrivals(stats, topic);
    REQUIRE(arrivals.size() == 1);
    CHECK(arrivals[0] >= reset);
  }
  CHECK_THAT(run.log(), Catch::Contains("usage cap (code 1308): no task starts until"));
  CHECK_THAT(run.log(), Catch::Contains("usage cap reset: tasks start again"));
}

TEST_CASE("a usage cap under --on-quota stop ends the run with exit 3 and points to --resume",
          "[errors][quota][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  const std::string fault = GENERATE(as<std::string>{}, "quota_reset_600s", "quota_1310_reset_600s");
  INFO("--mode " << mode << ", " << fault);
  Simulator sim;
  Run run(sim, numbered("[[fault:" + fault + "]] capped", 20),
          {"--mode", mode, "--concurrency", std::to_string(kConcurrency), "--on-quota", "stop"});
  REQUIRE(run.finish() == 3);
  INFO(run.diagnostics());
  CHECK_THAT(run.abort_reason(), Catch::Contains("usage cap") && Catch::Contains("--resume"));
  CHECK(sim.requests_total() <= kConcurrency + 2);
  // Nothing failed for good: every topic is cancelled, so a --resume after the reset runs each again.
  for (std::size_t i = 0; i < 20; ++i) {
    CHECK(status_of(run.record("[[fault:" + fault + "]] capped " + std::to_string(i))) == "cancelled");
  }
}

TEST_CASE("an analysis cut short or empty fails its task with the partial text and finish_reason, unless accepted",
          "[errors][incomplete][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  const bool stream = GENERATE(false, true);
  INFO("--mode " << mode << (stream ? " --stream" : ""));
  Simulator sim;
  const std::vector<std::string> topics = {"[[fault:length]] cut", "[[fault:context_exceeded]] too long",
                                           "[[fault:empty_content]] blank", "fine"};
  std::vector<std::string> args = {"--mode", mode};
  if (stream) args.push_back("--stream");
  SECTION("by default") {
    Run run(sim, topics, args);
    REQUIRE(run.finish() == 1);
    INFO(run.diagnostics());
    for (const auto& [topic, finish_reason] : {std::pair{topics[0], "length"},
                                              std::pair{topics[1], "model_context_window_exceeded"},
                                              std::pair{topics[2], "stop"}}) {
      INFO(topic);
      const auto& r = run.record(topic);
      CHECK(status_of(r) == "failed");
      CHECK(kind_of(r) == "incomplete");
      CHECK(r["attempts"].GetInt() == 1);
      REQUIRE(r["steps"].Size() == 1);
      CHECK(std::string(r["steps"][0]["finish_reason"].GetString()) == finish_reason);
      if (topic != topics[2]) CHECK_THAT(r["analysis"].GetString(), Catch::StartsWith("Analysis of"));
    }
    CHECK(status_of(run.record("fine")) == "succeeded");
  }
  SECTION("--accept-incomplete") {
    args.push_back("--accept-incomplete");
    Run run(sim, topics, args);
    REQUIRE(run.finish() == 0);
    INFO(run.diagnostics());
    CHECK(std::string(run.record(topics[0])["steps"][0]["finish_reason"].GetString()) == "length");
    CHECK_THAT(run.record(topics[0])["analysis"].GetString(), Catch::StartsWith("Analysis of"));
  }
}
