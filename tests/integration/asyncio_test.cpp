// --mode asyncio: one event loop holding many pipelines in flight, with the same guarantees as the
// other modes. Each check is a function of the mode, so the same body can run for every mode.
#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <map>
#include <regex>
#include <set>

#include "simulator.hpp"

using namespace std::chrono_literals;
using cbm::test::eventually;
using cbm::test::read_text;
using cbm::test::Simulator;
using cbm::test::SpawnOptions;
using cbm::test::Subprocess;
using cbm::test::TempDir;
using cbm::test::write_text;
using Clock = std::chrono::steady_clock;

namespace {

// The analysis prompt is the bare topic, so the simulator's by_topic counts requests per topic.
constexpr const char* kBareTopicPrompt = "[analysis.user]\n{topic}\n";

struct Run {
  TempDir dir;
  Simulator& sim;

  explicit Run(Simulator& s) : sim(s) { write_text(dir / "prompts.txt", kBareTopicPrompt); }

  std::filesystem::path report() const { return dir / "report.json"; }
  std::string log() const { return read_text(dir / "run.log"); }

  std::unique_ptr<Subprocess> start(const std::string& mode, std::vector<std::string> extra) const {
    std::vector<std::string> a = {cbm::test::supervisor_path(), "--base-url", sim.base_url(), "--output",
                                  report().string(), "--log-file", (dir / "run.log").string(), "--prompt-file",
                                  (dir / "prompts.txt").string(), "--no-search", "--mode", mode};
    if (std::find(extra.begin(), extra.end(), "--delay") == extra.end()) a.insert(a.end(), {"--delay", "0"});
    a.insert(a.end(), extra.begin(), extra.end());
    SpawnOptions o;
    o.output_dir = dir.path();
    o.env["BIGMODEL_API_KEY"] = "test-key";
    return std::make_unique<Subprocess>(a, o);
  }

  std::string topics_file(const std::vector<std::string>& topics) const {
    std::string text;
    for (const auto& t : topics) text += t + "\n";
    write_text(dir / "topics.txt", text);
    return (dir / "topics.txt").string();
  }
};

struct Row {
  std::string status;
  std::string error_kind;
  int attempts = 0;
};

// The report's results by topic; fails the test unless every topic in `topics` has exactly one record
// under the id that is its position.
std::map<std::string, Row> results_exactly_once(const std::filesystem::path& report,
                                                const std::vector<std::string>& topics) {
  rapidjson::Document d;
  const std::string text = read_text(report);
  d.Parse(text.c_str());
  REQUIRE_FALSE(d.HasParseError());
  const auto& results = d["results"];
  REQUIRE(results.Size() == topics.size());
  std::map<std::string, Row> rows;
  std::set<std::uint64_t> ids;
  for (const auto& r : results.GetArray()) {
    const std::string topic = r["topic"].GetString();
    const std::uint64_t id = r["id"].GetUint64();
    REQUIRE(id < topics.size());
    REQUIRE(topics[id] == topic);
    ids.insert(id);
    Row row;
    row.status = r["status"].GetString();
    row.attempts = r["attempts"].GetInt();
    if (r.HasMember("error") && r["error"].IsObject()) row.error_kind = r["error"]["kind"].GetString();
    REQUIRE(rows.emplace(topic, row).second);
  }
  REQUIRE(ids.size() == topics.size());
  return rows;
}

std::vector<std::string> numbered(const std::string& stem, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(stem + " " + std::to_string(i));
  return out;
}

std::size_t count(const std::map<std::string, Row>& rows, const std::string& status) {
  std::size_t n = 0;
  for (const auto& [topic, row] : rows) n += row.status == status ? 1 : 0;
  return n;
}

void thousand_in_flight(const std::string& mode) {
  Simulator sim({"--latency-ms", "2000", "--threads", "2"});
  Run run(sim);
  const auto topics = numbered("wide", 1000);
  const auto t0 = Clock::now();
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--concurrency", "1000", "--quiet"});
  const int status = p->exit_code(120s);
  const auto took = Clock::now() - t0;
  INFO(p->err() << run.log().substr(0, 3000));
  REQUIRE(status == 0);
  const auto rows = results_exactly_once(run.report(), topics);
  CHECK(count(rows, "succeeded") == 1000);
  const auto stats = sim.stats();
  CHECK(stats["requests_total"].GetInt64() == 1000);
  CHECK(stats["peak_in_flight"].GetInt64() >= 950);
  // 1,000 at once take one round trip of 2 s, not 1,000 of them; generous for a loaded machine.
  CHECK(took < 30s);
}

void retries_follow_the_error_class(const std::string& mode) {
  Simulator sim;
  Run run(sim);
  const std::string transient = "transient [[fault:500_1234]]";
  const std::string twice = "recovers [[fault:429_1302*2]]";
  const std::string unsafe = "unsafe [[fault:400_1301]]";
  const std::string garbled = "garbled [[fault:invalid_json*1]]";
  const std::string reset = "reset [[fault:reset*1]]";
  const std::vector<std::string> topics = {transient, twice, unsafe, garbled, reset};
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--max-retries", "2", "--quiet"});
  CHECK(p->exit_code() == 1);
  std::map<std::string, std::int64_t> requests;
  auto stats = sim.stats();
  for (auto& m : stats["by_topic"].GetObject()) requests[m.name.GetString()] = m.value.GetInt64();
  CHECK(requests[transient] == 3);  // the first attempt and --max-retries 2 retries
  CHECK(requests[twice] == 3);      // two refusals, then success
  CHECK(requests[unsafe] == 1);     // task-fatal: never retried
  CHECK(requests[garbled] == 2);
  CHECK(requests[reset] == 2);
  const auto rows = results_exactly_once(run.report(), topics);
  CHECK(rows.at(transient).status == "failed");
  CHECK(rows.at(transient).attempts == 3);
  CHECK(rows.at(twice).status == "succeeded");
  CHECK(rows.at(unsafe).status == "failed");
  CHECK(rows.at(unsafe).attempts == 1);
  CHECK(rows.at(garbled).status == "succeeded");
  CHECK(rows.at(reset).status == "succeeded");
}

void hung_request_times_out_and_retries(const std::string& mode) {
  Simulator sim;
  Run run(sim);
  const std::string hanging = "stuck [[fault:hang*1]]";
  const std::vector<std::string> topics = {"fine", hanging};
  const auto t0 = Clock::now();
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--timeout", "1", "--max-retries", "1",
                            "--quiet"});
  const int status = p->exit_code(30s);
  const auto took = Clock::now() - t0;
  INFO(run.log());
  REQUIRE(status == 0);
  CHECK(took < 10s);  // the deadline, not the server, ended attempt 1
  const auto rows = results_exactly_once(run.report(), topics);
  CHECK(rows.at(hanging).status == "succeeded");
  CHECK(rows.at(hanging).attempts == 2);
  CHECK(rows.at("fine").attempts == 1);
  CHECK_THAT(run.log(), Catch::Contains("timeout"));
}

void sigterm_drains(const std::string& mode) {
  Simulator sim({"--latency-ms", "300"});
  Run run(sim);
  const auto topics = numbered("drained", 40);
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--concurrency", "4", "--quiet"});
  std::int64_t running = 0;
  REQUIRE(eventually([&] {
    running = sim.stats()["in_flight"].GetInt64();
    return running > 0;
  }));
  p->signal(SIGTERM);
  const int status = p->exit_code(15s);
  INFO(run.log());
  REQUIRE(status == 143);
  const auto rows = results_exactly_once(run.report(), topics);
  const std::size_t succeeded = count(rows, "succeeded");
  CHECK(succeeded >= static_cast<std::size_t>(running));  // what was in flight finished within the grace
  CHECK(succeeded + count(rows, "cancelled") == topics.size());
  CHECK(count(rows, "cancelled") >= 1);
  for (const auto& [topic, row] : rows) {
    if (row.status != "cancelled") continue;
    CHECK(row.attempts == 0);
    CHECK(row.error_kind == "cancelled");
  }
  CHECK(sim.requests_total() == static_cast<std::int64_t>(succeeded));  // nothing new after the signal
}

void second_sigterm_stops_at_once(const std::string& mode) {
  Simulator sim;
  Run run(sim);
  const auto topics = numbered("never answered [[fault:hang]]", 6);
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--concurrency", "4", "--timeout", "120",
                            "--drain-grace", "30"});
  REQUIRE(eventually([&] { return sim.stats()["in_flight"].GetInt64() == 4; }));
  p->signal(SIGTERM);
  REQUIRE(eventually([&] { return run.log().find("draining") != std::string::npos; }));
  p->signal(SIGTERM);
  const auto second = Clock::now();
  const auto raw = p->wait_for(5s);
  const auto took = Clock::now() - second;
  INFO(run.log());
  REQUIRE(raw.has_value());
  CHECK(took < 2s);
  REQUIRE(p->exit_code() == 143);
  const auto rows = results_exactly_once(run.report(), topics);
  CHECK(count(rows, "cancelled") == topics.size());
  std::size_t cancelled_in_flight = 0;
  for (const auto& [topic, row] : rows) cancelled_in_flight += row.attempts == 1 ? 1 : 0;
  CHECK(cancelled_in_flight == 4);
}

void run_fatal_error_aborts(const std::string& mode) {
  Simulator sim;
  Run run(sim);
  const auto topics = numbered("broke [[fault:429_1113]]", 200);
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--concurrency", "8", "--quiet"});
  REQUIRE(p->exit_code() == 3);
  CHECK(sim.requests_total() <= 8 + 2);  // the first answer stops the run: no more is sent
  const auto rows = results_exactly_once(run.report(), topics);
  CHECK(count(rows, "failed") >= 1);
  CHECK(count(rows, "failed") + count(rows, "cancelled") == topics.size());
  CHECK_THAT(run.log(), Catch::Contains("run aborted"));
}

void limit_adapts_to_the_platform(const std::string& mode) {
  Simulator sim({"--latency-ms", "40", "--concurrency-limit", "10"});
  Run run(sim);
  const auto topics = numbered("adaptive", 400);
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--concurrency", "40", "--max-retries", "20",
                            "--quiet"});
  REQUIRE(p->exit_code(120s) == 0);
  auto stats = sim.stats();
  const auto total = stats["requests_total"].GetInt64();
  const auto refused = stats["by_code"].HasMember("1302") ? stats["by_code"]["1302"].GetInt64() : 0;
  CHECK(stats["by_status"]["200"].GetInt64() == 400);
  INFO("refused " << refused << " of " << total);
  CHECK(refused * 100 <= total * 15);  // not hammering the limit: the first wave, then a probe per round trip
  const std::string log = run.log();
  std::vector<int> limits;
  const std::regex change("in-flight limit [0-9]+ -> ([0-9]+)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), change); it != std::sregex_iterator(); ++it) {
    limits.push_back(std::stoi((*it)[1]));
  }
  REQUIRE(limits.size() >= 2);
  CHECK(limits.back() <= 14);
}

void delay_between_a_slots_tasks(const std::string& mode) {
  Simulator sim;
  Run run(sim);
  const auto topics = numbered("paced", 6);
  const auto t0 = Clock::now();
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--concurrency", "2", "--delay", "0.3", "--quiet"});
  REQUIRE(p->exit_code() == 0);
  const auto took = Clock::now() - t0;
  // Each of the 2 slots runs 3 tasks with a 0.3 s pause between them: at least 0.6 s in all.
  CHECK(took >= 600ms);
  CHECK(took < 10s);
  CHECK(count(results_exactly_once(run.report(), topics), "succeeded") == topics.size());
}

}  // namespace

TEST_CASE("asyncio: --delay pauses each slot between its tasks", "[asyncio][delay]") {
  delay_between_a_slots_tasks("asyncio");
}

TEST_CASE("asyncio: the in-flight limit adapts to the platform's 1302 refusals", "[asyncio][adaptive]") {
  limit_adapts_to_the_platform("asyncio");
}

TEST_CASE("asyncio holds 1,000 topics in flight at once and every one succeeds", "[asyncio][scale]") {
  thousand_in_flight("asyncio");
}

TEST_CASE("asyncio retries follow the error class, counted request by request", "[asyncio][retries]") {
  retries_follow_the_error_class("asyncio");
}

TEST_CASE("asyncio: a hanging request times out at --timeout and its retry succeeds", "[asyncio][timeout]") {
  hung_request_times_out_and_retries("asyncio");
}

TEST_CASE("asyncio: SIGTERM drains in-flight tasks, cancels the rest and exits 143", "[asyncio][signals]") {
  sigterm_drains("asyncio");
}

TEST_CASE("asyncio: a second SIGTERM stops at once and records in-flight tasks as cancelled", "[asyncio][signals]") {
  second_sigterm_stops_at_once("asyncio");
}

TEST_CASE("asyncio: a run-fatal error (no balance) aborts the run with exit 3", "[asyncio][fatal]") {
  run_fatal_error_aborts("asyncio");
}

TEST_CASE("a concurrency that cannot fit in the open-file limit exits 2 and says so", "[asyncio][usage]") {
  Simulator sim;
  TempDir dir;
  SpawnOptions o;
  o.output_dir = dir.path();
  o.env["BIGMODEL_API_KEY"] = "test-key";
  // The shell lowers the hard limit, which the supervisor cannot raise back.
  Subprocess p({"/bin/sh", "-c", "ulimit -n 256 && exec \"$0\" \"$@\"", cbm::test::supervisor_path(), "--base-url",
                sim.base_url(), "--mode", "asyncio", "--concurrency", "1000", "--output",
                (dir / "r.json").string(), "--log-file", (dir / "run.log").string()},
               o);
  CHECK(p.exit_code() == 2);
  CHECK_THAT(p.err(), Catch::Contains("--concurrency 1000") && Catch::Contains("open files"));
  CHECK(sim.requests_total() == 0);
}
