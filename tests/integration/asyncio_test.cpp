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
using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, eventually, ...
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
  auto p = run.start(mode, {"--topics-file", run.topics_file(topics), "--concurrency", "1000", "--quiet"});
  const int status = p->exit_code(120s);
  INFO(p->err() << run.log().substr(0, 3000));
  REQUIRE(status == 0);
  const auto rows = results_exactly_once(run.report(), topics);
  CHECK(count(rows, "succeeded") == 1000);
  const auto stats = sim.stats();
  CHECK(stats["requests_total"].GetInt64() == 1000);
  CHECK(stats["peak_in_flight"].GetInt64() >= 950);
  // 1,000 at once (peak_in_flight above), not one after another.
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
  CHECK(count(results_exactly_once(run.report(), topics), "succeeded") == topics.size());
}

}  // namespace

TEST_CASE("every slot pauses for --delay between its tasks", "[delay][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  delay_between_a_slots_tasks(mode);
}

TEST_CASE("asyncio holds 1,000 topics in flight at once and every one succeeds", "[asyncio][scale]") {
  thousand_in_flight("asyncio");
}

TEST_CASE("a concurrency that cannot fit in the open-file limit exits 2 and says so", "[asyncio][supervisor][usage]") {
  // asyncio holds a socket per transfer; multiprocessing two descriptors per worker process, and with
  // --workers that is the shared workers plus, at worst, a solo worker per slot: 64 + 2 x (100 + 50)
  // does not fit in 300, where 64 + 2 x 100 without --workers would.
  const auto [limit, concurrency, flags] = GENERATE(table<std::string, std::string, std::vector<std::string>>({
      {"256", "1000", {"--mode", "asyncio"}},
      {"300", "100", {"--workers", "50"}},
  }));
  INFO("ulimit -n " << limit);
  Simulator sim;
  TempDir dir;
  SpawnOptions o;
  o.output_dir = dir.path();
  o.env["BIGMODEL_API_KEY"] = "test-key";
  // The shell lowers the hard limit, which the supervisor cannot raise back.
  std::vector<std::string> argv = {"/bin/sh", "-c", "ulimit -n " + limit + " && exec \"$0\" \"$@\"",
                                   cbm::test::supervisor_path(), "--base-url", sim.base_url(), "--topics", "one",
                                   "--concurrency", concurrency, "--output", (dir / "r.json").string(),
                                   "--log-file", (dir / "run.log").string()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  Subprocess p(argv, o);
  CHECK(p.exit_code() == 2);
  CHECK_THAT(p.err(), Catch::Contains("--concurrency " + concurrency) && Catch::Contains("open files"));
  if (flags[0] == "--workers") CHECK_THAT(p.err(), Catch::Contains("with --workers 50"));
  CHECK(sim.requests_total() == 0);
}
