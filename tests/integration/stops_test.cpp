// Stops that must be prompt and cheap, in every mode: a journal that can no longer be written stops
// dispatch within one wave of in-flight attempts; SIGTERM on a huge input writes what was read, not the
// whole input, and --resume then finishes every topic once (docs/design.md, "Guarantees"; README
// "The report").
#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;
namespace fs = std::filesystem;

namespace {

// A topics file of `n` numbered topics ("<stem> <i>"), written by the test.
fs::path write_topics(const fs::path& path, const std::string& stem, std::size_t n) {
  std::ofstream out(path);
  for (std::size_t i = 0; i < n; ++i) out << stem << ' ' << i << '\n';
  return path;
}

std::size_t count_lines(const fs::path& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// The supervisor over a topics file in its own directory: report.json, its journal beside it, run.log.
class StopRun {
 public:
  StopRun(const Simulator& sim, const fs::path& topics, const std::vector<std::string>& args, const TempDir& dir)
      : dir_(dir) {
    std::vector<std::string> argv = {supervisor_path(), "--base-url",  sim.base_url(), "--output",
                                     report().string(), "--log-file", log().string(), "--topics-file",
                                     topics.string(),   "--delay",    "0",           "--no-search"};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<Subprocess>(argv, supervisor_spawn_options(dir_.path()));
  }

  Subprocess& process() { return *process_; }
  fs::path report() const { return dir_ / "report.json"; }
  fs::path journal() const { return dir_ / "report.journal.jsonl"; }
  fs::path log() const { return dir_ / "run.log"; }
  std::string diagnostics() const {
    return "stderr:\n" + process_->err().substr(0, 4000) + "\nlog:\n" + read_text(log()).substr(0, 4000);
  }

 private:
  const TempDir& dir_;
  std::unique_ptr<Subprocess> process_;
};

rapidjson::Document parse_file(const fs::path& path) {
  rapidjson::Document d;
  const std::string text = read_text(path);
  d.Parse(text.c_str(), text.size());
  REQUIRE_FALSE(d.HasParseError());
  REQUIRE(d.IsObject());
  return d;
}

}  // namespace

TEST_CASE("a journal that can no longer be written stops dispatch within one wave of in-flight attempts",
          "[stops][journal][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  constexpr int kConcurrency = 4;
  Simulator sim({"--latency-ms", "200"});
  TempDir dir;
  const fs::path topics = write_topics(dir / "topics.txt", "journalled topic", 400);
  StopRun run(sim, topics, {"--mode", mode, "--concurrency", std::to_string(kConcurrency)}, dir);
  // A few records in, the journal's file may grow no more: its next write fails with EFBIG, as on a
  // full disk (the CLI ignores SIGXFSZ, so the limit is an error, not a kill).
  REQUIRE(eventually([&] { return fs::exists(run.journal()) && count_lines(run.journal()) >= 5; }, 30s));
  const auto size = static_cast<rlim_t>(fs::file_size(run.journal()));
  const rlimit limit{size, size};
  REQUIRE(::prlimit(run.process().pid(), RLIMIT_FSIZE, &limit, nullptr) == 0);
  const std::int64_t sent_before = sim.requests_total();

  const int status = run.process().exit_code(60s);
  INFO(run.diagnostics());
  CHECK(status == 3);
  CHECK_THAT(run.process().err(), Catch::Contains("cannot write the journal"));
  // The requests sent after the failure: the attempts already in flight, or started before the
  // failure was seen, and no more (the whole list is 400).
  const std::int64_t sent_after = sim.requests_total() - sent_before;
  std::cerr << "--mode " << mode << ": " << sent_after << " requests after the journal's file was capped\n";
  CHECK(sent_after <= kConcurrency);
}

TEST_CASE("SIGTERM on a 1,000,000-topic file exits at once and writes what was read, not the whole input",
          "[stops][signals][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  constexpr std::size_t kTopics = 1000000;
  Simulator sim;
  TempDir dir;
  const fs::path topics = write_topics(dir / "topics.txt", "one of a million", kTopics);
  StopRun run(sim, topics, {"--mode", mode, "--concurrency", "8", "--quiet"}, dir);
  // Once the first results are in the journal (its header and a record), the run is well under way.
  REQUIRE(eventually([&] { return fs::exists(run.journal()) && count_lines(run.journal()) >= 2; }, 60s));
  const auto signalled = std::chrono::steady_clock::now();
  run.process().signal(SIGTERM);
  const auto raw = run.process().wait_for(30s);  // a hang guard, not the bound: the latency is printed
  const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - signalled);
  INFO(run.diagnostics());
  REQUIRE(raw.has_value());
  std::cerr << "--mode " << mode << ": exit " << latency.count() << " ms after SIGTERM\n";
  CHECK(run.process().exit_code() == 143);
  CHECK(fs::file_size(run.journal()) < 10u << 20);
  CHECK(fs::file_size(run.report()) < 10u << 20);

  const auto report = parse_file(run.report());
  const auto& unread = report["not_read"];
  REQUIRE(unread.Size() == 1);
  const std::uint64_t first = unread[0]["first_id"].GetUint64();
  CHECK(unread[0]["round"].GetUint() == 1);
  CHECK(unread[0]["end_id"].GetUint64() == kTopics);
  CHECK(unread[0]["count"].GetUint64() == kTopics - first);
  const auto& summary = report["summary"];
  CHECK(summary["not_read"].GetUint64() == kTopics - first);
  CHECK(summary["total_tasks"].GetUint64() == first);  // a record for each topic read, none for the rest
  std::set<std::uint64_t> ids;
  for (const auto& r : report["results"].GetArray()) {
    const std::uint64_t id = r["id"].GetUint64();
    CHECK(id < first);
    CHECK(ids.insert(id).second);
  }
  CHECK(ids.size() == first);
  CHECK(report["results"].Size() == first);
}

TEST_CASE("a resume after a SIGTERM runs exactly the topics not finished: every topic once and none sent twice",
          "[stops][resume][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  // Smaller than a million so the resume runs every topic in CI's time; the stop is the same.
  constexpr std::size_t kTopics = 3000;
  Simulator sim({"--latency-ms", "20"});
  TempDir dir;
  const fs::path topics = write_topics(dir / "topics.txt", "resumed topic", kTopics);
  {
    StopRun run(sim, topics, {"--mode", mode, "--concurrency", "4", "--quiet"}, dir);
    REQUIRE(eventually([&] { return fs::exists(run.journal()) && count_lines(run.journal()) >= 3; }, 60s));
    run.process().signal(SIGTERM);
    INFO(run.diagnostics());
    REQUIRE(run.process().exit_code(30s) == 143);
    const auto stopped = parse_file(run.report());
    REQUIRE(stopped["not_read"].Size() == 1);
    CHECK(stopped["not_read"][0]["first_id"].GetUint64() < kTopics);
  }
  StopRun resumed(sim, topics, {"--mode", mode, "--concurrency", "32", "--quiet", "--resume"}, dir);
  INFO(resumed.diagnostics());
  REQUIRE(resumed.process().exit_code(120s) == 0);
  const auto report = parse_file(resumed.report());
  CHECK(report["not_read"].Size() == 0);
  CHECK(report["summary"]["not_read"].GetUint64() == 0);
  CHECK(report["summary"]["successful_tasks"].GetUint64() == kTopics);
  std::map<std::uint64_t, int> seen;
  for (const auto& r : report["results"].GetArray()) {
    const std::uint64_t id = r["id"].GetUint64();
    REQUIRE(id < kTopics);
    CHECK(std::string(r["topic"].GetString()) == "resumed topic " + std::to_string(id));
    ++seen[id];
  }
  CHECK(seen.size() == kTopics);
  for (const auto& [id, n] : seen) CHECK(n == 1);
  // Each topic was sent once over both runs: the stop cancelled only topics never sent, and the resume
  // sent neither a finished one nor one twice.
  CHECK(sim.requests_total() == static_cast<std::int64_t>(kTopics));
}
