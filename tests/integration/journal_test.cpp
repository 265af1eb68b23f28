// Large lists and monitors: the journal, --resume after kill -9, streamed and validated topics,
// duplicates, SIGHUP/SIGUSR1 and progress output. Real supervisor processes against the simulator.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, eventually, ...

namespace {

// The analysis prompt is the bare topic, so the simulator's by_topic counts requests per topic.
constexpr const char* kBareTopicPrompt = "[analysis.user]\n{topic}\n";

struct Run {
  TempDir dir;
  Simulator& sim;
  std::string mode = "multiprocessing";
  std::string delay = "0";  // --delay, seconds

  explicit Run(Simulator& s) : sim(s) { write_text(dir / "prompts.txt", kBareTopicPrompt); }

  std::filesystem::path report() const { return dir / "report.json"; }
  std::filesystem::path journal() const { return dir / "report.journal.jsonl"; }
  std::filesystem::path log() const { return dir / "run.log"; }

  std::vector<std::string> argv(std::vector<std::string> extra) const {
    std::vector<std::string> a = {cbm::test::supervisor_path(), "--base-url", sim.base_url(), "--output",
                                  report().string(), "--log-file", log().string(), "--prompt-file",
                                  (dir / "prompts.txt").string(), "--no-search", "--delay", delay, "--mode", mode};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  std::unique_ptr<Subprocess> start(std::vector<std::string> extra) const {
    SpawnOptions o;
    o.output_dir = dir.path();
    o.env["BIGMODEL_API_KEY"] = "test-key";
    return std::make_unique<Subprocess>(argv(std::move(extra)), o);
  }
};

rapidjson::Document parse_json(const std::filesystem::path& p) {
  rapidjson::Document d;
  const std::string text = read_text(p);
  d.Parse(text.c_str());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

std::size_t line_count(const std::filesystem::path& p) {
  std::ifstream in(p);
  return static_cast<std::size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
}

// Topics with a terminal record in the journal other than cancelled.
std::set<std::string> finished_in_journal(const std::filesystem::path& journal) {
  std::set<std::string> out;
  std::ifstream in(journal);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject()) continue;  // a torn tail
    if (std::string(d["status"].GetString()) != "cancelled") out.insert(d["topic"].GetString());
  }
  return out;
}

std::map<std::string, std::int64_t> requests_by_topic(const Simulator& sim) {
  std::map<std::string, std::int64_t> out;
  auto stats = sim.stats();
  for (auto& m : stats["by_topic"].GetObject()) out[m.name.GetString()] = m.value.GetInt64();
  return out;
}

std::string numbered_topics(std::size_t n, const std::string& prefix) {
  std::string text;
  for (std::size_t i = 0; i < n; ++i) text += prefix + std::to_string(i) + "\n";
  return text;
}

}  // namespace

TEST_CASE("a supervisor killed -9 five times and resumed reports every topic once and never resends a finished one",
          "[journal][resume][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  // 20 ms a request, 8 at a time: 400 topics a second. Five kills after 50-199 new records each stay
  // well below n, so every run is killed mid-way, even when this test is descheduled for half a second
  // between seeing its target and sending the kill (the run goes on meanwhile).
  Simulator sim({"--latency-ms", "20"});
  Run run(sim);
  run.mode = mode;
  const std::size_t n = 2000;
  write_text(run.dir / "topics.txt", numbered_topics(n, "resume topic "));
  const std::vector<std::string> flags = {"--topics-file", (run.dir / "topics.txt").string(), "--concurrency", "8",
                                          "--quiet"};
  std::mt19937 rng(12345);
  std::vector<std::pair<std::set<std::string>, std::map<std::string, std::int64_t>>> checkpoints;
  for (int kill = 0; kill < 5; ++kill) {
    auto extra = flags;
    if (kill > 0) extra.push_back("--resume");
    auto p = run.start(extra);
    const std::size_t already = std::filesystem::exists(run.journal()) ? line_count(run.journal()) : 0;
    const std::size_t target = already + 50 + rng() % 150;
    REQUIRE(eventually([&] { return std::filesystem::exists(run.journal()) && line_count(run.journal()) >= target; },
                       30s));
    const auto workers = cbm::test::children_of(p->pid());
    p->signal(SIGKILL);
    REQUIRE(p->exit_code() == 128 + SIGKILL);
    // Workers die with their supervisor; only then is the simulator's view final for this checkpoint.
    REQUIRE(eventually([&] {
      return std::none_of(workers.begin(), workers.end(), [](pid_t w) { return cbm::test::process_alive(w); });
    }, 5s));
    checkpoints.emplace_back(finished_in_journal(run.journal()), requests_by_topic(sim));
  }
  auto last = run.start({"--topics-file", (run.dir / "topics.txt").string(), "--concurrency", "8", "--quiet",
                         "--resume"});
  REQUIRE(last->exit_code() == 0);

  auto report = parse_json(run.report());
  CHECK(report["summary"]["total_tasks"].GetUint64() == n);
  CHECK(report["summary"]["successful_tasks"].GetUint64() == n);
  std::set<std::string> topics;
  std::set<std::uint64_t> ids;
  for (const auto& r : report["results"].GetArray()) {
    topics.insert(r["topic"].GetString());
    ids.insert(r["id"].GetUint64());
  }
  CHECK(topics.size() == n);
  CHECK(ids.size() == n);
  CHECK(report["results"].Size() == n);

  const auto final_counts = requests_by_topic(sim);
  for (const auto& [finished, counts_then] : checkpoints) {
    REQUIRE_FALSE(finished.empty());
    for (const auto& topic : finished) {
      INFO("topic " << topic);
      CHECK(final_counts.at(topic) == counts_then.at(topic));
    }
  }
}

TEST_CASE("a torn last journal line is dropped on resume and that topic runs again", "[journal][resume][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  Run run(sim);
  run.mode = mode;
  write_text(run.dir / "topics.txt", numbered_topics(20, "torn "));
  const std::vector<std::string> flags = {"--topics-file", (run.dir / "topics.txt").string(), "--quiet"};
  REQUIRE(run.start(flags)->exit_code() == 0);
  // Simulate a crash mid-write: cut the last record in half.
  std::string journal = read_text(run.journal());
  journal.resize(journal.size() - 40);
  write_text(run.journal(), journal);
  sim.reset_stats();

  auto extra = flags;
  extra.push_back("--resume");
  REQUIRE(run.start(extra)->exit_code() == 0);
  CHECK(sim.requests_total() == 1);
  auto report = parse_json(run.report());
  CHECK(report["results"].Size() == 20);
  CHECK(report["summary"]["successful_tasks"].GetUint64() == 20);
}

TEST_CASE("resuming with another model or model setting is refused unless forced", "[journal][resume]") {
  Simulator sim;
  Run run(sim);
  REQUIRE(run.start({"--topics", "x", "y", "--quiet"})->exit_code() == 0);
  sim.reset_stats();
  auto refused = run.start({"--topics", "x", "y", "--quiet", "--resume", "--chat-model", "glm-4.5"});
  CHECK(refused->exit_code() == 2);
  CHECK_THAT(refused->err(), Catch::Contains("--force-resume"));
  CHECK(sim.requests_total() == 0);
  // Every setting that changes results is in the fingerprint, and the refusal names each that differs.
  auto other_settings = run.start({"--topics", "x", "y", "--quiet", "--resume", "--temperature", "0.2",
                                   "--max-tokens", "1000", "--search-recency", "oneWeek"});
  CHECK(other_settings->exit_code() == 2);
  CHECK_THAT(other_settings->err(), Catch::Contains("--temperature: 0.6 in the journal, 0.2 now") &&
                                        Catch::Contains("--max-tokens: 4096 in the journal, 1000 now") &&
                                        !Catch::Contains("--search-recency"));  // --no-search: no search step
  CHECK(sim.requests_total() == 0);
  auto forced = run.start({"--topics", "x", "y", "--quiet", "--resume", "--chat-model", "glm-4.5", "--force-resume"});
  CHECK(forced->exit_code() == 0);
  CHECK(sim.requests_total() == 0);  // both topics were already finished
}

TEST_CASE("invalid topic lines are skipped with their line numbers, comments, blanks and CRLF are fine",
          "[topics]") {
  Simulator sim;
  Run run(sim);
  std::string text = "# a comment\r\n  first topic  \r\n\r\nbad \xC3\x28 utf8\n";
  text += std::string("nul\0byte", 8) + "\n";
  text += std::string(5000, 'x') + "\nsecond topic\n";
  write_text(run.dir / "topics.txt", text);
  auto p = run.start({"--topics-file", (run.dir / "topics.txt").string(), "--quiet"});
  CHECK(p->exit_code() == 0);
  auto report = parse_json(run.report());
  CHECK(report["summary"]["total_tasks"].GetUint64() == 2);
  CHECK(report["summary"]["invalid_input_lines"].GetUint64() == 3);
  std::set<std::string> topics;
  for (const auto& r : report["results"].GetArray()) topics.insert(r["topic"].GetString());
  CHECK(topics == std::set<std::string>{"first topic", "second topic"});
  const std::string log = read_text(run.log());
  CHECK_THAT(log, Catch::Contains("line 4 skipped: not valid UTF-8"));
  CHECK_THAT(log, Catch::Contains("line 5 skipped: contains a NUL byte"));
  CHECK_THAT(log, Catch::Contains("line 6 skipped: longer than 4096 bytes"));
}

TEST_CASE("a topic repeated in a round is analysed once and reported for each occurrence", "[topics][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  Run run(sim);
  run.mode = mode;
  auto p = run.start({"--topics", "alpha", "beta", "alpha", "alpha", "--concurrency", "2", "--quiet"});
  CHECK(p->exit_code() == 0);
  CHECK(sim.requests_total() == 2);
  auto report = parse_json(run.report());
  REQUIRE(report["results"].Size() == 4);
  int copies = 0;
  for (const auto& r : report["results"].GetArray()) {
    CHECK(r["success"].GetBool());
    CHECK(std::string(r["analysis"].GetString()).size() > 0);
    if (r.HasMember("duplicate_of")) {
      ++copies;
      CHECK(r["duplicate_of"].GetUint64() == 0);
      CHECK(std::string(r["topic"].GetString()) == "alpha");
    }
  }
  CHECK(copies == 2);
}

TEST_CASE("a monitor rewrites its report every round, rereads topics on SIGHUP, logs status on SIGUSR1, keeps N rounds",
          "[monitor][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  Run run(sim);
  run.mode = mode;
  const auto topics_file = run.dir / "topics.txt";
  write_text(topics_file, "old one\nold two\n");
  auto p = run.start({"--topics-file", topics_file.string(), "--iterations", "0", "--keep-rounds",
                      "3", "--quiet"});
  auto log_has = [&](const std::string& s) { return read_text(run.log()).find(s) != std::string::npos; };
  REQUIRE(eventually([&] { return log_has("round 2 finished"); }));
  {
    // The report after a round is complete and current.
    auto report = parse_json(run.report());
    CHECK(report["summary"]["total_tasks"].GetUint64() >= 4);
  }
  write_text(topics_file, "new topic\n");
  p->signal(SIGHUP);
  REQUIRE(eventually([&] { return requests_by_topic(sim).count("new topic") > 0; }));
  std::filesystem::remove(topics_file);
  p->signal(SIGHUP);
  REQUIRE(eventually([&] { return log_has("keeping the current topics"); }));
  p->signal(SIGUSR1);
  REQUIRE(eventually([&] { return log_has("status: round"); }));
  const auto rounds_now = requests_by_topic(sim)["new topic"];
  REQUIRE(eventually([&] { return requests_by_topic(sim)["new topic"] >= rounds_now + 4; }));
  p->signal(SIGTERM);
  CHECK(p->exit_code() == 143);
  auto report = parse_json(run.report());
  CHECK(report["summary"]["interrupted"].GetBool());
  CHECK(report["rounds"].Size() <= 3);
  std::set<std::uint32_t> rounds_in_results;
  for (const auto& r : report["results"].GetArray()) rounds_in_results.insert(r["round"].GetUint());
  CHECK(rounds_in_results.size() <= 3);
  // The journal was compacted to the kept rounds as well.
  CHECK(line_count(run.journal()) <= 1 + 3 * 2);
}

TEST_CASE("SIGUSR1 during a monitor's pause between rounds is answered at once, not at the next round",
          "[monitor]") {
  Simulator sim;
  Run run(sim);
  write_text(run.dir / "topics.txt", "paused one\npaused two\n");
  // A 60 s pause: an answer that waits for the next round fails the test (eventually() gives up first).
  run.delay = "60";
  auto p = run.start({"--topics-file", (run.dir / "topics.txt").string(), "--concurrency", "2", "--iterations", "0",
                      "--quiet"});
  auto log_has = [&](const std::string& s) { return read_text(run.log()).find(s) != std::string::npos; };
  REQUIRE(eventually([&] { return log_has("round 1 finished"); }));
  p->signal(SIGUSR1);
  REQUIRE(eventually([&] { return log_has("status: round 1 finished, round 2 starts in "); }));
  CHECK(log_has("so far 2 tasks: 2 succeeded, 0 failed, 0 cancelled"));
  CHECK(sim.requests_total() == 2);  // the pause went on: round 2 has not started
  p->signal(SIGTERM);
  CHECK(p->exit_code() == 143);
}

TEST_CASE("progress is a live line on a terminal, periodic lines otherwise, and nothing with --quiet", "[progress]") {
  Simulator sim({"--latency-ms", "40"});
  Run run(sim);
  write_text(run.dir / "topics.txt", numbered_topics(40, "progress "));
  const std::vector<std::string> base = {"--topics-file", (run.dir / "topics.txt").string(), "--concurrency", "2"};

  SECTION("stderr redirected to a file: plain progress lines") {
    auto extra = base;
    extra.insert(extra.end(), {"--progress-interval", "0.2"});
    auto p = run.start(extra);
    REQUIRE(p->exit_code() == 0);
    const std::string err = p->err();
    CHECK_THAT(err, Catch::Contains("concurrent_bigmodel: progress: round 1: "));
    CHECK_THAT(err, Catch::Contains("/40 done"));
    CHECK(err.find('\r') == std::string::npos);
  }
  SECTION("a pseudo-terminal: one line redrawn in place") {
    std::string command;
    for (const auto& a : run.argv(base)) command += "'" + a + "' ";
    SpawnOptions o;
    o.output_dir = run.dir.path();
    o.env["BIGMODEL_API_KEY"] = "test-key";
    Subprocess p({"/usr/bin/script", "-qfec", command, "/dev/null"}, o);
    REQUIRE(p.exit_code() == 0);
    const std::string out = p.out();
    CHECK(std::count(out.begin(), out.end(), '\r') >= 2);
    CHECK_THAT(out, Catch::Contains("in flight"));
    CHECK_THAT(out, Catch::Contains("\x1b[2K"));
  }
  SECTION("--quiet: nothing on stderr") {
    auto extra = base;
    extra.push_back("--quiet");
    auto p = run.start(extra);
    REQUIRE(p->exit_code() == 0);
    CHECK(p->err().empty());
  }
}

TEST_CASE("retries follow the error class: counted on the simulator, request by request", "[retries][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  Run run(sim);
  run.mode = mode;
  const std::string transient = "transient [[fault:500_1234]]";
  const std::string twice = "recovers [[fault:429_1302*2]]";
  const std::string unsafe = "unsafe [[fault:400_1301]]";
  const std::string garbled = "garbled [[fault:invalid_json*1]]";
  auto p = run.start({"--topics", transient, twice, unsafe, garbled, "--max-retries", "2", "--quiet"});
  CHECK(p->exit_code() == 1);
  auto counts = requests_by_topic(sim);
  CHECK(counts[transient] == 3);  // the first attempt and --max-retries 2 retries
  CHECK(counts[twice] == 3);      // two refusals, then success
  CHECK(counts[unsafe] == 1);     // task-fatal: never retried
  CHECK(counts[garbled] == 2);
  auto report = parse_json(run.report());
  std::map<std::string, std::string> status;
  for (const auto& r : report["results"].GetArray()) status[r["topic"].GetString()] = r["status"].GetString();
  CHECK(status[transient] == "failed");
  CHECK(status[twice] == "succeeded");
  CHECK(status[unsafe] == "failed");
  CHECK(status[garbled] == "succeeded");
}

TEST_CASE("resuming over a changed topic list is refused, naming the topic", "[journal][resume]") {
  Simulator sim;
  Run run(sim);
  write_text(run.dir / "topics.txt", "first\nsecond\nthird\n");
  const std::vector<std::string> flags = {"--topics-file", (run.dir / "topics.txt").string(), "--quiet"};
  REQUIRE(run.start(flags)->exit_code() == 0);
  write_text(run.dir / "topics.txt", "inserted\nfirst\nsecond\nthird\n");
  sim.reset_stats();
  auto extra = flags;
  extra.push_back("--resume");
  auto p = run.start(extra);
  CHECK(p->exit_code() == 2);
  CHECK_THAT(p->err(), Catch::Contains("topic 0 ('inserted') is not the topic the journal recorded"));
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a key given with --api-key is blanked out of the supervisor's command line", "[secrets]") {
  Simulator sim;
  Run run(sim);
  SpawnOptions o;
  o.output_dir = run.dir.path();
  o.unset_env = {"BIGMODEL_API_KEY", "ZHIPUAI_API_KEY"};
  auto argv = run.argv({"--topics", "slow [[fault:hang]]", "--timeout", "30", "--quiet", "--api-key",
                        "sk-flag-secret-123"});
  Subprocess p(argv, o);
  // Once the request hangs at the simulator, the supervisor has long finished parsing its flags.
  REQUIRE(eventually([&] { return sim.stats()["in_flight"].GetInt64() == 1; }));
  const std::string cmdline = read_text("/proc/" + std::to_string(p.pid()) + "/cmdline");
  CHECK(cmdline.find("sk-flag-secret-123") == std::string::npos);
  CHECK(cmdline.find("******************") != std::string::npos);
  // Two signals sent back to back may merge into one pending signal: the second goes once the
  // first has been seen.
  p.signal(SIGINT);
  REQUIRE(eventually([&] { return read_text(run.log()).find("draining") != std::string::npos; }));
  p.signal(SIGINT);
  CHECK(p.exit_code() == 130);
}

TEST_CASE("a fork server killed mid-run costs its workers' attempts, not the run", "[launcher]") {
  Simulator sim({"--latency-ms", "20"});
  Run run(sim);
  write_text(run.dir / "topics.txt", numbered_topics(200, "launcher "));
  // More workers than --max-restarts: counted one by one, the server's death would abort the run.
  auto p = run.start({"--topics-file", (run.dir / "topics.txt").string(), "--concurrency", "8", "--max-restarts", "3",
                      "--max-retries", "5", "--quiet"});
  pid_t launcher = -1;
  REQUIRE(eventually([&] {
    for (pid_t child : cbm::test::children_of(p->pid())) {
      if (read_text("/proc/" + std::to_string(child) + "/cmdline").find("--launcher") != std::string::npos) {
        launcher = child;
      }
    }
    return launcher > 0 && sim.requests_total() >= 20;
  }));
  ::kill(launcher, SIGKILL);
  CHECK(p->exit_code() == 0);
  auto report = parse_json(run.report());
  CHECK(report["summary"]["successful_tasks"].GetUint64() == 200);
  CHECK(report["results"].Size() == 200);
  CHECK_THAT(read_text(run.log()), Catch::Contains("with its fork server"));
}
