// --rpm paces requests from the first second: no window holds more than the cap's share plus one.
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <csignal>

#include "simulator.hpp"

using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, eventually, ...

namespace {

// The most arrivals within `window_ms` of any arrival.
std::size_t most_in_any_window(const std::vector<std::int64_t>& arrivals, std::int64_t window_ms) {
  std::size_t most = 0;
  for (std::size_t i = 0; i < arrivals.size(); ++i) {
    std::size_t n = 0;
    for (std::size_t j = i; j < arrivals.size() && arrivals[j] < arrivals[i] + window_ms; ++j) ++n;
    most = std::max(most, n);
  }
  return most;
}

void require_rpm_paces(const std::string& mode) {
  Simulator sim({"--latency-ms", "20"});
  TempDir dir;
  std::string topics;
  constexpr int kTopics = 30;
  for (int i = 0; i < kTopics; ++i) topics += "paced " + std::to_string(i) + "\n";
  write_text(dir / "topics.txt", topics);
  SpawnOptions o;
  o.output_dir = dir.path();
  o.env["BIGMODEL_API_KEY"] = "test-key";
  Subprocess p(
      {cbm::test::supervisor_path(), "--mode", mode, "--base-url", sim.base_url(), "--topics-file",
       (dir / "topics.txt").string(), "--rpm", "300", "--concurrency", "8", "--no-search", "--delay", "0",
       "--quiet", "--output", (dir / "r.json").string(), "--log-file", (dir / "run.log").string()},
      o);
  REQUIRE(p.exit_code(std::chrono::seconds(60)) == 0);

  const auto stats = sim.stats();
  std::vector<std::int64_t> arrivals;
  for (const auto& a : stats["arrivals_ms"].GetArray()) arrivals.push_back(a.GetInt64());
  REQUIRE(arrivals.size() == static_cast<std::size_t>(kTopics));
  std::sort(arrivals.begin(), arrivals.end());
  // 300 a minute is 5 a second: the first second, the first two, and any window of 5 or 10 s. The
  // arrivals are seen at the server: besides the cap's share and the one request the bucket may start
  // with, one request admitted on time may reach the server late, beside the next (a loaded machine or
  // a sanitizer delays a send by more than the 200 ms between two admissions).
  INFO("mode " << mode << ": arrivals (ms) from " << arrivals.front() << " to " << arrivals.back());
  for (const std::int64_t seconds : {1, 2, 5, 10}) {
    INFO("window " << seconds << " s");
    CHECK(most_in_any_window(arrivals, seconds * 1000) <= static_cast<std::size_t>(5 * seconds + 2));
  }
  // ...and the cap is what bounds the run, not something slower: 30 requests at 5 a second span 5.8 s.
  CHECK(arrivals.back() - arrivals.front() >= 5600);
  CHECK(arrivals.back() - arrivals.front() <= 9000);
}

// Attempts held back by --rpm are not in flight: a TERM ends the run at once and records them cancelled.
void require_stop_ends_rate_waits(const std::string& mode) {
  Simulator sim;
  TempDir dir;
  SpawnOptions o;
  o.output_dir = dir.path();
  o.env["BIGMODEL_API_KEY"] = "test-key";
  // One request a minute: the first topic goes at once, the other two wait about a minute each.
  Subprocess p({cbm::test::supervisor_path(),
                "--mode",
                mode,
                "--base-url",
                sim.base_url(),
                "--topics",
                "first",
                "second",
                "third",
                "--rpm",
                "1",
                "--concurrency",
                "3",
                "--no-search",
                "--delay",
                "0",
                "--quiet",
                "--output",
                (dir / "r.json").string(),
                "--log-file",
                (dir / "run.log").string()},
               o);
  REQUIRE(eventually([&] { return sim.by_status("200") == 1; }));
  p.signal(SIGTERM);
  const auto raw = p.wait_for(std::chrono::seconds(5));
  REQUIRE(raw.has_value());
  CHECK(p.exit_code() == 143);
  CHECK(sim.requests_total() == 1);
  rapidjson::Document report;
  report.Parse(read_text(dir / "r.json").c_str());
  REQUIRE(report.IsObject());
  CHECK(report["summary"]["successful_tasks"].GetInt() == 1);
  CHECK(report["summary"]["cancelled_tasks"].GetInt() == 2);
}

}  // namespace

TEST_CASE(
    "multiprocessing: --rpm 300 sends at most the cap's share plus two requests in any window, from the first "
    "second on",
    "[rate]") {
  require_rpm_paces("multiprocessing");
}

TEST_CASE(
    "threading: --rpm 300 sends at most the cap's share plus two requests in any window, from the first "
    "second on",
    "[rate]") {
  require_rpm_paces("threading");
}

TEST_CASE("multiprocessing: a TERM ends the waits for --rpm at once", "[rate]") {
  require_stop_ends_rate_waits("multiprocessing");
}

TEST_CASE("threading: a TERM ends the waits for --rpm at once", "[rate]") {
  require_stop_ends_rate_waits("threading");
}

TEST_CASE(
    "asyncio: --rpm 300 sends at most the cap's share plus two requests in any window, from the first "
    "second on",
    "[rate]") {
  require_rpm_paces("asyncio");
}

TEST_CASE("asyncio: a TERM ends the waits for --rpm at once", "[rate]") {
  require_stop_ends_rate_waits("asyncio");
}
