// The supervisor as its users run it: real worker processes against the simulator, killed, hung,
// signalled and misconfigured. Each test name is a guarantee of docs/design.md ("The user's contract",
// "Guarantees").
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, eventually, ...
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {


// --- processes -------------------------------------------------------------------------------------

// A pid names a process only together with its start time: pids are recycled.
struct ProcessIdentity {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  auto operator<=>(const ProcessIdentity&) const = default;
};

struct ProcStat {
  char state = 0;
  pid_t ppid = 0;
  unsigned long long start_time = 0;
};

std::optional<ProcStat> proc_stat(pid_t pid) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  ProcStat s;
  rest >> s.state >> s.ppid;
  std::string skip;
  for (int field = 5; field < 22; ++field) rest >> skip;  // fields 5..21; starttime is field 22
  rest >> s.start_time;
  if (!rest) return std::nullopt;
  return s;
}

bool still_running(const ProcessIdentity& p) {
  const auto s = proc_stat(p.pid);
  return s && s->start_time == p.start_time && s->state != 'Z';
}

std::string segment_prefix(pid_t supervisor) {
  return "cbm." + std::to_string(::getuid()) + "." + std::to_string(supervisor) + ".";
}

// Every live process below `root`, whatever the process shape (workers exec'd by the supervisor or
// forked by a helper of it).
std::vector<ProcessIdentity> descendants_of(pid_t root) {
  std::multimap<pid_t, ProcessIdentity> by_parent;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    if (const auto s = proc_stat(pid); s && s->state != 'Z')
      by_parent.emplace(s->ppid, ProcessIdentity{pid, s->start_time});
  }
  std::vector<ProcessIdentity> out;
  std::vector<pid_t> parents = {root};
  while (!parents.empty()) {
    const pid_t parent = parents.back();
    parents.pop_back();
    for (auto [it, end] = by_parent.equal_range(parent); it != end; ++it) {
      out.push_back(it->second);
      parents.push_back(it->second.pid);
    }
  }
  return out;
}

// A worker of `supervisor` is a process that has one of its channels mapped.
bool is_worker_of(const ProcessIdentity& p, pid_t supervisor) {
  return read_text("/proc/" + std::to_string(p.pid) + "/maps")
             .find("/dev/shm/" + segment_prefix(supervisor)) != std::string::npos;
}

std::vector<ProcessIdentity> workers_of(pid_t supervisor, std::set<ProcessIdentity>* all_seen = nullptr) {
  std::vector<ProcessIdentity> workers;
  for (const auto& p : descendants_of(supervisor)) {
    if (all_seen != nullptr) all_seen->insert(p);
    if (is_worker_of(p, supervisor)) workers.push_back(p);
  }
  return workers;
}

std::string cmdline_of(pid_t pid) {
  std::string c = read_text("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(c.begin(), c.end(), '\0', ' ');
  return c;
}

// SIGKILLs `p` if it still runs: the pidfd pins the process and the start time proves it is the one
// we saw, so a recycled pid is never hit.
bool kill_process(const ProcessIdentity& p) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0));
  if (fd < 0) return false;
  const auto s = proc_stat(p.pid);
  const bool killed =
      s && s->start_time == p.start_time && ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0) == 0;
  ::close(fd);
  return killed;
}

// --- the report ------------------------------------------------------------------------------------

struct ResultRow {
  std::string topic;
  std::string status;
  std::string error_message;
  std::string error_kind;
  std::string error_class;
  int attempts = 0;
  std::uint64_t id = 0;
};

struct Report {
  rapidjson::Document doc;
  std::vector<ResultRow> results;

  const rapidjson::Value& summary() const { return doc["summary"]; }
  bool interrupted() const { return summary()["interrupted"].GetBool(); }
  bool aborted() const { return summary()["aborted"].GetBool(); }
  std::string abort_reason() const {
    const auto& r = summary()["abort_reason"];
    return r.IsString() ? r.GetString() : "";
  }
  const ResultRow& by_topic(const std::string& topic) const {
    const auto it =
        std::find_if(results.begin(), results.end(), [&](const ResultRow& r) { return r.topic == topic; });
    if (it == results.end()) throw std::runtime_error("no result for topic '" + topic + "'");
    return *it;
  }
  std::size_t count(const std::string& status) const {
    return static_cast<std::size_t>(std::count_if(results.begin(), results.end(),
                                                  [&](const ResultRow& r) { return r.status == status; }));
  }
};

Report read_report(const fs::path& path) {
  Report report;
  const std::string text = read_text(path);
  report.doc.Parse(text.c_str());
  INFO("report " << path << ":\n" << text.substr(0, 2000));
  REQUIRE_FALSE(report.doc.HasParseError());
  REQUIRE(report.doc.IsObject());
  REQUIRE(report.doc.HasMember("summary"));
  REQUIRE(report.doc["results"].IsArray());
  for (const auto& r : report.doc["results"].GetArray()) {
    ResultRow row;
    row.topic = r["topic"].GetString();
    row.status = r["status"].GetString();
    if (r["error_message"].IsString()) row.error_message = r["error_message"].GetString();
    if (r.HasMember("error") && r["error"].HasMember("kind")) row.error_kind = r["error"]["kind"].GetString();
    if (r.HasMember("error") && r["error"].HasMember("class")) row.error_class = r["error"]["class"].GetString();
    row.attempts = r["attempts"].GetInt();
    row.id = r["id"].GetUint64();
    report.results.push_back(std::move(row));
  }
  return report;
}

// Every topic ends in exactly one record, found both by its text and by its id (= its index).
void require_each_topic_exactly_once(const Report& report, const std::vector<std::string>& topics) {
  REQUIRE(report.results.size() == topics.size());
  std::multiset<std::string> seen_topics;
  std::set<std::uint64_t> seen_ids;
  for (const auto& r : report.results) {
    seen_topics.insert(r.topic);
    seen_ids.insert(r.id);
    REQUIRE(r.id < topics.size());
    REQUIRE(topics[r.id] == r.topic);
  }
  REQUIRE(seen_ids.size() == topics.size());
  for (const auto& t : topics) REQUIRE(seen_topics.count(t) == 1);
}

// After a stop: every topic read ends in exactly one record, the rest of the input (when any) in one
// not_read range to its end, counted in the summary. Returns how many topics were read.
std::size_t require_each_topic_once_or_unread(const Report& report, const std::vector<std::string>& topics) {
  const auto& unread = report.doc["not_read"];
  REQUIRE(unread.Size() <= 1);
  std::size_t read = topics.size();
  if (unread.Size() == 1) {
    read = unread[0]["first_id"].GetUint64();
    CHECK(unread[0]["end_id"].GetUint64() == topics.size());
  }
  CHECK(report.summary()["not_read"].GetUint64() == topics.size() - read);
  require_each_topic_exactly_once(report, std::vector<std::string>(topics.begin(), topics.begin() + read));
  return read;
}

std::vector<std::string> numbered_topics(const std::string& stem, std::size_t n) {
  std::vector<std::string> topics;
  for (std::size_t i = 0; i < n; ++i) topics.push_back(stem + " " + std::to_string(i));
  return topics;
}

// --- running the supervisor ------------------------------------------------------------------------

struct Launch {
  std::vector<std::string> topics;  // written to a --topics-file; empty: none given
  std::vector<std::string> args;    // after the standard ones (base URL, report, log, --delay 0, --no-search)
  std::string key = kTestKey;       // BIGMODEL_API_KEY
  std::string executable = cbm::test::supervisor_path();
};

// One supervisor run in its own directory (cwd, report, log, topics file).
class SupervisorRun {
 public:
  SupervisorRun(const std::string& base_url, const Launch& launch) {
    std::vector<std::string> argv = {
        launch.executable, "--base-url",        base_url,  "--output", report_path().string(),
        "--log-file",      log_path().string(), "--delay", "0",        "--no-search"};
    if (!launch.topics.empty()) {
      std::string text;
      for (const auto& t : launch.topics) text += t + "\n";
      write_text(dir_ / "topics.txt", text);
      argv.insert(argv.end(), {"--topics-file", (dir_ / "topics.txt").string()});
    }
    argv.insert(argv.end(), launch.args.begin(), launch.args.end());
    process_ = std::make_unique<Subprocess>(argv, supervisor_spawn_options(dir_.path(), launch.key));
  }

  Subprocess& process() { return *process_; }
  pid_t pid() const { return process_->pid(); }
  fs::path report_path() const { return dir_ / "report.json"; }
  fs::path log_path() const { return dir_ / "run.log"; }
  std::string log() const { return read_text(log_path()); }
  Report report() const { return read_report(report_path()); }
  std::string diagnostics() const { return "stderr:\n" + process_->err() + "\nlog:\n" + log(); }

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
};

std::size_t env_size(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? static_cast<std::size_t>(std::stoul(v)) : fallback;
}

std::int64_t in_flight(const Simulator& sim) {
  return sim.stats()["in_flight"].GetInt64();
}

}  // namespace

TEST_CASE("in the last round a worker left without a task stops at once, while the last attempt still runs",
          "[supervisor][shutdown]") {
  Simulator sim;
  const std::string hanging = "stuck [[fault:hang*1]]";
  SupervisorRun run(sim.base_url(),
                    {.topics = {"quick 1", "quick 2", hanging},
                     .args = {"--concurrency", "3", "--timeout", "3", "--kill-grace", "0.5", "--max-retries", "1",
                              "--quiet"}});
  std::set<ProcessIdentity> processes_seen;
  // The hanging attempt is the only request in flight, and its worker the only one left: the two
  // quick topics' workers are gone before --timeout ends that attempt.
  CHECK(eventually([&] { return in_flight(sim) == 1 && workers_of(run.pid(), &processes_seen).size() == 1; }, 2500ms));
  CHECK(run.log().find("passed --timeout") == std::string::npos);
  // The retry that follows the timeout gets a worker again, and nothing is left behind.
  const int status = run.process().exit_code(30s);
  INFO(run.diagnostics());
  REQUIRE(status == 0);
  CHECK(run.report().by_topic(hanging).attempts == 2);
  for (const auto& w : processes_seen) CHECK_FALSE(still_running(w));
  CHECK(cbm::test::shm_segments(segment_prefix(run.pid())).empty());
}

// Kills the worker of a random one of `slots` slots, live or not, every `min`..`max` ms until it is
// destroyed: each worker dies at the same steady rate (independent crashes), 1/slots per round whatever
// the number alive (`slots` is at least the most workers there can be). Killing "some live worker" at a fixed rate instead would pile every kill onto the
// last survivors at the end of the round and fail the last task as a poison pill, rightly (or hold it
// in its solo worker's growing restart backoff).
class ChaosMonkey {
 public:
  ChaosMonkey(pid_t supervisor, std::size_t slots, std::chrono::milliseconds min, std::chrono::milliseconds max)
      : thread_([=, this](std::stop_token stop) {
          std::mt19937 rng(std::random_device{}());
          std::uniform_int_distribution<std::int64_t> pause_ms(min.count(), max.count());
          std::uniform_int_distribution<std::size_t> slot(0, slots - 1);
          while (!stop.stop_requested()) {
            const auto workers = workers_of(supervisor, &seen_);
            if (const std::size_t hit = slot(rng); hit < workers.size() && kill_process(workers[hit])) ++kills_;
            std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));  // pacing, not synchronisation
          }
        }) {}
  // Stops the killing (the thread is joined): call before reading what it saw.
  void stop() { thread_ = {}; }
  int kills() const { return kills_; }
  const std::set<ProcessIdentity>& processes_seen() const { return seen_; }

 private:
  int kills_ = 0;
  std::set<ProcessIdentity> seen_;
  std::jthread thread_;  // last: it stops before what it uses goes
};

TEST_CASE("workers SIGKILLed at random instants lose no topic, leak no process and no segment",
          "[supervisor][chaos]") {
  // A worker per slot, or two workers of four attempts each (with their solo workers).
  const int workers = GENERATE(0, 2);
  INFO("--workers " << workers);
  // Answers take 5..95 ms: quick turnarounds put kills between tasks and around result messages, slow
  // ones put them mid-request; and the run lasts long enough (>= 50 tasks x 50 ms per worker) for the
  // kills to count on any machine, however fast, and under sanitizers, where each round of the chaos
  // loop (a /proc walk) takes over 100 ms. Each process dies at the same rate in both layouts, so two
  // shared workers (and the solo ones of the moment) take fewer kills per second: they get twice the
  // topics, and each of their kills takes down several attempts.
  const std::size_t scale = env_size("CBM_CHAOS_TOPICS", 400);
  const std::size_t n = scale * (workers > 0 ? 2 : 1);
  const int kills_wanted = workers > 0 ? 15 : 30;
  Simulator sim({"--latency-dist", "uniform", "--latency-ms", "5", "--latency-max-ms", "95"});
  const auto topics = numbered_topics("chaos topic", n);
  constexpr std::size_t kConcurrency = 8;
  std::vector<std::string> args = {"--concurrency", std::to_string(kConcurrency), "--max-retries", "10",
                                   "--max-restarts", "100000", "--quiet"};
  if (workers > 0) args.insert(args.end(), {"--workers", std::to_string(workers)});
  SupervisorRun run(sim.base_url(), {.topics = topics, .args = args});
  const pid_t supervisor = run.pid();
  // As many slots as there can be workers: two shared ones and a solo one per slot.
  ChaosMonkey chaos(supervisor, kConcurrency + static_cast<std::size_t>(workers), 20ms, 50ms);
  const auto t0 = Clock::now();
  const int status = run.process().exit_code(std::chrono::seconds(60 + n / 20));
  chaos.stop();
  const int kills = chaos.kills();
  const auto& processes_seen = chaos.processes_seen();
  const auto took = Clock::now() - t0;

  INFO("kills " << kills << ", processes seen " << processes_seen.size() << ", run took "
                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n"
                << run.diagnostics().substr(0, 4000));
  REQUIRE(status == 0);
  if (scale >= 400) CHECK(kills >= kills_wanted);
  const Report report = run.report();
  require_each_topic_exactly_once(report, topics);
  CHECK(report.count("succeeded") == n);
  // Kills did land mid-task (in a shared worker: mid-tasks, which then ran again alone).
  CHECK_THAT(run.log(), Catch::Contains(workers > 0 ? "(SIGKILL) with " : "(SIGKILL) during the attempt"));
  for (const auto& w : processes_seen) CHECK_FALSE(still_running(w));
  CHECK(cbm::test::shm_segments(segment_prefix(supervisor)).empty());
}

TEST_CASE("a hanging request times out at --timeout and its retry succeeds", "[supervisor][timeout][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  const std::string hanging = "stuck [[fault:hang*1]]";
  SupervisorRun run(sim.base_url(),
                    {.topics = {"fine", hanging},
                     .args = {"--timeout", "1", "--kill-grace", "0.5", "--max-retries", "1", "--quiet", "--mode", mode}});
  // The hang fault never answers: only the deadline can end attempt 1 (exit_code's limit guards a hang).
  const int status = run.process().exit_code(30s);
  INFO(run.diagnostics());
  REQUIRE(status == 0);
  const Report report = run.report();
  CHECK(report.by_topic(hanging).status == "succeeded");
  CHECK(report.by_topic(hanging).attempts == 2);
  CHECK(report.by_topic("fine").attempts == 1);
  CHECK_THAT(run.log(), Catch::Contains("timeout"));
}

TEST_CASE("SIGTERM drains in-flight tasks, cancels the rest read, records the unread as a range, exits 143",
          "[supervisor][signals][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim({"--latency-ms", "300"});
  const auto topics = numbered_topics("drained topic", 40);
  SupervisorRun run(sim.base_url(), {.topics = topics, .args = {"--concurrency", "4", "--quiet", "--mode", mode}});
  std::set<ProcessIdentity> processes_seen;
  std::int64_t running = 0;
  REQUIRE(eventually([&] {
    workers_of(run.pid(), &processes_seen);
    running = in_flight(sim);
    return running > 0;
  }));
  run.process().signal(SIGTERM);
  const int status = run.process().exit_code(15s);
  INFO(run.diagnostics());
  REQUIRE(status == 143);
  const Report report = run.report();
  CHECK(report.interrupted());
  CHECK(report.summary()["exit_status"].GetInt() == 143);
  // The topics read have a record each; the rest (40 is more than 4 running and a read-ahead of 16)
  // are one unread range, to the end of the input.
  const std::size_t first_unread = require_each_topic_once_or_unread(report, topics);
  CHECK(first_unread < topics.size());
  const std::size_t succeeded = report.count("succeeded");
  CHECK(succeeded >=
        static_cast<std::size_t>(running));  // what was in flight finished within the drain grace
  CHECK(succeeded + report.count("cancelled") == first_unread);
  CHECK(report.count("cancelled") >= 1);
  for (const auto& r : report.results) {
    if (r.status != "cancelled") continue;
    CHECK(r.attempts == 0);
    CHECK(r.error_kind == "cancelled");
  }
  CHECK(sim.requests_total() ==
        static_cast<std::int64_t>(succeeded));  // nothing new was sent after the signal
  for (const auto& w : processes_seen) CHECK_FALSE(still_running(w));
  CHECK(cbm::test::shm_segments(segment_prefix(run.pid())).empty());
}

TEST_CASE("a second SIGTERM during the drain stops at once and records in-flight tasks as cancelled",
          "[supervisor][signals][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  const auto topics = numbered_topics("never answered [[fault:hang]]", 6);
  SupervisorRun run(
      sim.base_url(),
      {.topics = topics, .args = {"--concurrency", "4", "--timeout", "120", "--drain-grace", "30", "--mode", mode}});
  std::set<ProcessIdentity> processes_seen;
  REQUIRE(eventually([&] {
    workers_of(run.pid(), &processes_seen);
    return in_flight(sim) == 4;
  }));
  run.process().signal(SIGTERM);
  REQUIRE(eventually([&] { return run.log().find("draining") != std::string::npos; }));
  run.process().signal(SIGTERM);
  const auto raw = run.process().wait_for(5s);  // a hang guard: --timeout 120 and --drain-grace 30 would not end it
  INFO(run.diagnostics());
  REQUIRE(raw.has_value());
  REQUIRE(run.process().exit_code() == 143);
  const Report report = run.report();
  CHECK(report.interrupted());
  require_each_topic_exactly_once(report, topics);
  CHECK(report.count("cancelled") == topics.size());
  std::size_t cancelled_in_flight = 0;
  for (const auto& r : report.results) cancelled_in_flight += r.attempts == 1 ? 1 : 0;
  CHECK(cancelled_in_flight == 4);
  for (const auto& w : processes_seen) CHECK_FALSE(still_running(w));
}

TEST_CASE("a poison pill that kills its worker fails after its attempts, the other topics succeed",
          "[supervisor][crash]") {
  Simulator sim;
  const std::string boom = "boom [[fault:kill_client]]";
  SupervisorRun run(sim.base_url(),
                    {.topics = {"ok 1", "ok 2", boom, "ok 3"}, .args = {"--max-retries", "2", "--quiet"}});
  const int status = run.process().exit_code(30s);
  INFO(run.diagnostics());
  REQUIRE(status == 1);
  const Report report = run.report();
  const ResultRow& pill = report.by_topic(boom);
  CHECK(pill.status == "failed");
  CHECK(pill.attempts == 3);
  CHECK(pill.error_kind == "crash");
  CHECK_THAT(pill.error_message, Catch::Contains("signal 9") && Catch::Contains("SIGKILL"));
  for (const char* ok : {"ok 1", "ok 2", "ok 3"}) CHECK(report.by_topic(ok).status == "succeeded");
}

TEST_CASE("with --workers, a poison pill fails alone: no other topic spends an attempt on it",
          "[supervisor][crash][workers]") {
  // Answers take 300 ms, so the pill's worker always has other attempts in flight when it dies.
  Simulator sim({"--latency-ms", "300"});
  const std::string boom = "boom [[fault:kill_client]]";
  auto topics = numbered_topics("innocent", 11);
  topics.insert(topics.begin() + 1, boom);
  SupervisorRun run(sim.base_url(), {.topics = topics,
                                     .args = {"--concurrency", "6", "--workers", "2", "--max-retries", "2",
                                              "--delay", "0", "--quiet"}});
  const int status = run.process().exit_code(60s);
  INFO(run.diagnostics());
  REQUIRE(status == 1);
  const Report report = run.report();
  require_each_topic_exactly_once(report, topics);
  const ResultRow& pill = report.by_topic(boom);
  CHECK(pill.status == "failed");
  CHECK(pill.attempts == 3);
  CHECK(pill.error_kind == "crash");
  CHECK_THAT(pill.error_message, Catch::Contains("SIGKILL"));
  // Its first death took a shared worker: the attempts in it ran again alone, uncharged.
  CHECK_THAT(run.log(), Catch::Contains("attempts: each runs again alone"));
  for (const auto& topic : topics) {
    if (topic == boom) continue;
    INFO(topic);
    CHECK(report.by_topic(topic).status == "succeeded");
    CHECK(report.by_topic(topic).attempts == 1);
  }
}

TEST_CASE("with --workers, a timed-out attempt is cancelled in its shared worker, the others go on",
          "[supervisor][timeout][workers]") {
  Simulator sim({"--latency-ms", "50"});
  const std::string hanging = "stuck [[fault:hang*1]]";
  const auto fine = numbered_topics("fine", 6);
  auto topics = fine;
  topics.push_back(hanging);
  SupervisorRun run(sim.base_url(), {.topics = topics,
                                     .args = {"--concurrency", "4", "--workers", "1", "--timeout", "1",
                                              "--kill-grace", "30", "--max-retries", "1", "--quiet"}});
  // --kill-grace 30: the worker answers the cancel itself, or the run would take 30 s.
  const int status = run.process().exit_code(25s);
  INFO(run.diagnostics());
  REQUIRE(status == 0);
  const Report report = run.report();
  CHECK(report.by_topic(hanging).status == "succeeded");
  CHECK(report.by_topic(hanging).attempts == 2);
  for (const auto& topic : fine) CHECK(report.by_topic(topic).attempts == 1);
  CHECK_THAT(run.log(), Catch::Contains("cancelling the attempt for its timeout"));
  CHECK(run.log().find("SIGKILL") == std::string::npos);
}

TEST_CASE("with --workers, a shared worker that does not answer a cancel is SIGKILLed after --kill-grace",
          "[supervisor][timeout][workers]") {
  Simulator sim;
  const auto topics = numbered_topics("frozen [[fault:hang*1]]", 3);
  SupervisorRun run(sim.base_url(), {.topics = topics,
                                     .args = {"--concurrency", "3", "--workers", "1", "--timeout", "2",
                                              "--kill-grace", "0.5", "--max-retries", "1", "--quiet"}});
  // The three hang in one worker, which a SIGSTOP then freezes: it cannot answer the cancels.
  std::vector<ProcessIdentity> workers;
  REQUIRE(eventually([&] {
    workers = workers_of(run.pid());
    return in_flight(sim) == 3 && workers.size() == 1;
  }));
  REQUIRE(::kill(workers.front().pid, SIGSTOP) == 0);
  const int status = run.process().exit_code(30s);
  INFO(run.diagnostics());
  REQUIRE(status == 0);
  const Report report = run.report();
  for (const auto& topic : topics) {
    CHECK(report.by_topic(topic).status == "succeeded");
    CHECK(report.by_topic(topic).attempts == 2);
  }
  CHECK_THAT(run.log(), Catch::Contains("did not answer the cancel in time: SIGKILL"));
  CHECK_FALSE(still_running(workers.front()));
}

TEST_CASE("workers that keep dying at start-up abort the run with exit 3 and say why",
          "[supervisor][crash]") {
  Simulator sim;
  TempDir install;
  const fs::path supervisor = install / "concurrent_bigmodel";
  fs::copy_file(cbm::test::supervisor_path(), supervisor);
  const fs::path worker = install / "concurrent_bigmodel_worker";
  write_text(worker, "#!/bin/sh\nexit 1\n");
  fs::permissions(worker, fs::perms::owner_all);
  SupervisorRun run(sim.base_url(),
                    {.topics = numbered_topics("unreachable", 10),
                     .args = {"--concurrency", "2", "--max-restarts", "3", "--restart-period", "10"},
                     .executable = supervisor.string()});
  const int status = run.process().exit_code(30s);
  INFO(run.diagnostics());
  REQUIRE(status == 3);
  const Report report = run.report();
  CHECK(report.aborted());
  CHECK_THAT(report.abort_reason(), Catch::Contains("keep crashing"));
  CHECK_THAT(run.process().err(), Catch::Contains("keep crashing"));
  CHECK_THAT(run.log(), Catch::Contains("keep crashing"));
  CHECK(report.results.size() == 10);
  CHECK(report.count("cancelled") == 10);
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a supervisor killed with SIGKILL takes its workers along, the next run sweeps its segments",
          "[supervisor][crash]") {
  Simulator sim({"--latency-ms", "300"});
  pid_t dead = 0;
  std::set<ProcessIdentity> processes;  // the workers and any helper process of the run
  {
    SupervisorRun run(sim.base_url(), {.topics = numbered_topics("interrupted", 40),
                                       .args = {"--concurrency", "4", "--quiet"}});
    dead = run.pid();
    REQUIRE(eventually([&] { return workers_of(dead, &processes).size() == 4 && in_flight(sim) > 0; }));
    run.process().signal(SIGKILL);
    REQUIRE(run.process().exit_code(5s) == 128 + SIGKILL);
  }
  CHECK(eventually([&] { return std::none_of(processes.begin(), processes.end(), still_running); }, 1s));
  // Nothing could remove them: this is what the next run must clean up.
  REQUIRE_FALSE(cbm::test::shm_segments(segment_prefix(dead)).empty());

  SupervisorRun next(sim.base_url(), {.topics = {"after the crash"}, .args = {"--quiet"}});
  REQUIRE(next.process().exit_code(30s) == 0);
  // Gone, whichever supervisor swept them: tests running beside this one start supervisors too, and
  // any of them may sweep first (so the sweep's log line may be in another run's log).
  CHECK(cbm::test::shm_segments(segment_prefix(dead)).empty());
}

namespace {

void require_run_fatal_stops_traffic(const Simulator& sim, const std::string& key,
                                     const std::string& topic_stem, const std::string& reason) {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  constexpr int kConcurrency = 4;
  const auto topics = numbered_topics(topic_stem, 50);
  SupervisorRun run(sim.base_url(),
                    {.topics = topics,
                     .args = {"--concurrency", std::to_string(kConcurrency), "--max-retries", "5", "--quiet", "--mode", mode},
                     .key = key});
  std::set<ProcessIdentity> processes_seen;
  REQUIRE(eventually(
      [&] {
        workers_of(run.pid(), &processes_seen);
        return run.process().wait_for(0ms).has_value();
      },
      30s));
  INFO(run.diagnostics());
  REQUIRE(run.process().exit_code() == 3);
  const Report report = run.report();
  CHECK(report.aborted());
  CHECK_THAT(report.abort_reason(), Catch::Contains(reason));
  require_each_topic_once_or_unread(report, topics);
  CHECK(report.count("failed") >= 1);
  CHECK(report.count("succeeded") == 0);
  CHECK_THAT(run.log() + read_text(run.report_path()) + run.process().err(), !Catch::Contains(key));
  const std::int64_t requests = sim.requests_total();
  CHECK(requests <= kConcurrency + 2);
  // Nothing of the run is left that could send more.
  for (const auto& w : processes_seen) CHECK_FALSE(still_running(w));
  CHECK(sim.requests_total() == requests);
}

}  // namespace

TEST_CASE("a wrong API key (401) aborts the run with exit 3 after a handful of requests",
          "[supervisor][fatal][modes]") {
  Simulator sim({"--api-key", "right"});
  require_run_fatal_stops_traffic(sim, "sk-WRONG-canary-77aa", "topic", "401");
}

TEST_CASE("an exhausted balance (429 code 1113) aborts the run with exit 3 after a handful of requests",
          "[supervisor][fatal][modes]") {
  Simulator sim;
  require_run_fatal_stops_traffic(sim, kTestKey, "broke [[fault:429_1113]]", "1113");
}

TEST_CASE("bad flags and configuration exit 2, name the culprit and send nothing", "[supervisor][usage]") {
  Simulator sim;
  TempDir dir;
  write_text(dir / "topics.txt", "a topic\n");
  write_text(dir / "bad_prompt.txt", "[analysis.user]\nWrite about {topic} and {colour}\n");
  struct Case {
    std::vector<std::string> args;
    std::string names;  // stderr must contain this
    bool without_key = false;
  };
  const std::string topics_file = (dir / "topics.txt").string();
  const std::vector<Case> cases = {
      {{"--concurrency", "-1"}, "--concurrency"},
      {{"--concurrency", "0"}, "--concurrency"},
      {{"--mode", "fibers"}, "--mode"},
      {{"--timeout", "0"}, "--timeout"},
      {{"--iterations", "-1"}, "--iterations"},
      {{"--max-retries", "-1"}, "--max-retries"},
      {{"--rpm", "-5"}, "--rpm"},
      {{"--rpm", "fast"}, "--rpm"},
      {{"--tpm", "-1"}, "--tpm"},
      {{"--tpm", "1.5"}, "--tpm"},
      {{"--output", (dir / "no-such-dir" / "report.json").string()}, "--output"},
      {{}, "--api-key", true},
      {{"--base-url", "ftp://x"}, "--base-url"},
      {{"--base-url", "http://example.com"}, "--allow-insecure-http"},
      {{"--topics-file", (dir / "missing.txt").string()}, "--topics-file"},
      {{"--prompt-file", (dir / "bad_prompt.txt").string()}, "--prompt-file"},
      {{"--no-such-flag"}, "--no-such-flag"},
      {{"--topics", "x", "--topics-file", topics_file}, "--topics-file"},
      // Checked by the library's config_problem, named by the flag that sets the field.
      {{"--metrics-addr", "nowhere"}, "--metrics-addr: 'nowhere' is not HOST:PORT"},
      {{"--chat-model", ""}, "--chat-model: empty"},
      {{"--tool-model", ""}, "--tool-model: empty"},
      {{"--prompt-file", (dir / "topics.txt").string()}, "--prompt-file: line 1"},
      {{"--temperature", "1.5"}, "--temperature: 1.5 is not in [0, 1]"},
      {{"--workers", "-1"}, "--workers"},
      {{"--concurrency", "4", "--workers", "5"}, "--workers: 5 is not in 0..concurrency (4)"},
      {{"--mode", "threading", "--workers", "2"}, "--workers: applies to mode multiprocessing only"},
      {{"--via", "batch", "--workers", "2"}, "--workers: applies to via online only"},
  };
  for (const auto& c : cases) {
    const auto has = [&](const char* flag) {
      return std::find(c.args.begin(), c.args.end(), flag) != c.args.end();
    };
    std::vector<std::string> argv = {cbm::test::supervisor_path(), "--log-file", (dir / "run.log").string()};
    if (!has("--base-url")) argv.insert(argv.end(), {"--base-url", sim.base_url()});
    if (!has("--output")) argv.insert(argv.end(), {"--output", (dir / "report.json").string()});
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    SpawnOptions opts;
    opts.output_dir = dir.path();
    opts.cwd = dir.path();
    opts.unset_env = {"ZHIPUAI_API_KEY", "BIGMODEL_BASE_URL", "BIGMODEL_API_KEY"};
    if (!c.without_key) opts.env["BIGMODEL_API_KEY"] = kTestKey;
    Subprocess p(argv, opts);
    const int status = p.exit_code(10s);
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    INFO("args: " << shown << (c.without_key ? "(no key)" : "") << "\nstderr: " << p.err());
    CHECK(status == 2);
    CHECK_THAT(p.err(), Catch::Contains(c.names));
    for (const auto& entry : fs::directory_iterator(dir.path())) {  // no report, no journal: nothing began
      CHECK_FALSE(entry.path().filename().string().starts_with("report"));
    }
    CHECK(sim.requests_total() == 0);
  }
}

TEST_CASE("a repeated flag takes its last value, as argparse does, --topics included", "[supervisor][usage]") {
  Simulator sim;
  // Alone, the first values would be refused (exit 2); the later ones win.
  SupervisorRun run(sim.base_url(), {{},
                                     {"--concurrency", "0", "--concurrency", "2", "--mode", "fibers", "--mode",
                                      "threading", "--topics", "overridden", "--topics", "kept one", "kept two"}});
  REQUIRE(run.process().exit_code(60s) == 0);
  INFO(run.diagnostics());
  const Report report = run.report();
  require_each_topic_exactly_once(report, {"kept one", "kept two"});
  CHECK(run.log().find("mode threading, concurrency 2") != std::string::npos);
}

TEST_CASE("hostile answers are kept valid UTF-8, key-free and bounded in every record, file and log",
          "[supervisor][hostile][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  Simulator sim;
  const std::string huge = "huge [[fault:huge_error]]";
  const std::string bad = "bad bytes [[fault:bad_utf8]]";
  const std::string echo = "echo [[fault:echo_key]]";
  const std::string many = "many [[fault:many_values]]";
  SupervisorRun run(sim.base_url(), {{huge, bad, echo, many}, {"--mode", mode, "--max-retries", "0"}});
  REQUIRE(run.process().exit_code(60s) == 1);  // the huge error and the many values fail their tasks
  INFO(run.diagnostics().substr(0, 4000));
  // Every file we wrote is valid UTF-8 JSON (the report) or JSONL (the journal), as a strict reader sees it.
  const auto strict_json = [](const std::string& text) {
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
    return !d.HasParseError();
  };
  const std::string report_text = read_text(run.report_path());
  CHECK(strict_json(report_text));
  const fs::path journal = run.report_path().parent_path() / "report.journal.jsonl";
  std::istringstream lines(read_text(journal));
  for (std::string line; std::getline(lines, line);) CHECK(strict_json(line));
  const Report report = run.report();
  const ResultRow& h = report.by_topic(huge);
  CHECK(h.status == "failed");
  CHECK(h.error_message.size() < 4200);
  CHECK_THAT(h.error_message, Catch::Contains("bytes cut]"));
  // 3.5 million values are refused before a document is built (16 bytes a value: 56 MB a process).
  const ResultRow& m = report.by_topic(many);
  CHECK(m.status == "failed");
  CHECK_THAT(m.error_message, Catch::Contains("refused: more than 100000 values"));
  CHECK(report_text.size() < 100000);
  CHECK(read_text(run.log_path()).size() < 100000);
  const auto analysis_of = [&](const std::string& topic) {
    for (const auto& r : report.doc["results"].GetArray()) {
      if (topic == r["topic"].GetString()) return std::string(r["analysis"].GetString());
    }
    return std::string();
  };
  CHECK(report.by_topic(bad).status == "succeeded");
  CHECK_THAT(analysis_of(bad), Catch::Contains("\xEF\xBF\xBD"));  // U+FFFD where the bytes were
  // The record counts them: the simulator's three runs of bad bytes ("\xC3", "\xFF\xFE", a cut "\xE2\x82"),
  // in the step that received them; a clean answer's step has no count.
  const auto replaced_in = [&](const std::string& topic) -> std::int64_t {
    for (const auto& r : report.doc["results"].GetArray()) {
      if (topic != r["topic"].GetString()) continue;
      const auto& steps = r["steps"].GetArray();
      REQUIRE(steps.Size() == 1);  // --no-search: the analysis step alone
      return steps[0].HasMember("replaced_characters") ? steps[0]["replaced_characters"].GetInt64() : 0;
    }
    return -1;
  };
  CHECK(replaced_in(bad) == 3);
  CHECK(replaced_in(echo) == 0);
  CHECK_THAT(read_text(journal), Catch::Contains("\"replaced_characters\":3"));
  CHECK(report.by_topic(echo).status == "succeeded");
  CHECK_THAT(analysis_of(echo), Catch::Contains("(you sent [redacted])"));
  CHECK(report_text.find(kTestKey) == std::string::npos);
  CHECK(read_text(journal).find(kTestKey) == std::string::npos);
}

TEST_CASE("the API key never appears in a worker's argv, the log, the report or the console",
          "[supervisor][secrets][modes]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  const bool has_workers = mode == "multiprocessing";
  Simulator sim({"--latency-ms", "200"});
  const std::vector<std::string> topics = {"plain 1", "plain 2", "plain 3", "unsafe [[fault:400_1301]]",
                                           "flaky [[fault:500_1234*1]]"};
  SupervisorRun run(sim.base_url(), {.topics = topics, .args = {"--concurrency", "4", "--mode", mode}});
  std::map<ProcessIdentity, std::string> cmdlines;  // of the workers and any helper process of the run
  REQUIRE(eventually([&] {
    std::set<ProcessIdentity> processes;
    const std::size_t workers = workers_of(run.pid(), &processes).size();
    for (const auto& p : processes) {
      if (std::string c = cmdline_of(p.pid); !c.empty()) cmdlines[p] = std::move(c);
    }
    return has_workers ? workers >= 4 : in_flight(sim) >= 4;
  }));
  const int status = run.process().exit_code(30s);
  INFO(run.diagnostics());
  CHECK(status == 1);  // the unsafe topic failed: its error message went through the log and the report
  if (has_workers) REQUIRE(cmdlines.size() >= 4);
  for (const auto& [p, c] : cmdlines) {
    INFO("process " << p.pid << ": " << c);
    CHECK_THAT(c, !Catch::Contains(kTestKey) && Catch::Contains("concurrent_bigmodel_worker"));
  }
  CHECK_THAT(run.log(), !Catch::Contains(kTestKey));
  CHECK_THAT(read_text(run.report_path()), !Catch::Contains(kTestKey));
  CHECK_THAT(run.process().err(), !Catch::Contains(kTestKey));
  CHECK_THAT(run.process().out(), !Catch::Contains(kTestKey));
  CHECK_FALSE(run.log().empty());
}

// A forked worker's cost is mostly its start: the fork server resolves every library symbol once, at its
// own load, and its workers inherit them resolved instead of each resolving (and copying the pages of)
// the same symbols again.
TEST_CASE("the fork server loads its libraries with every symbol resolved, and its workers inherit them",
          "[supervisor][fork]") {
  Simulator sim({"--latency-ms", "300"});
  SupervisorRun run(sim.base_url(), {.topics = {"a", "b", "c"}, .args = {"--concurrency", "3"}});
  std::set<ProcessIdentity> processes;
  std::vector<ProcessIdentity> workers;
  REQUIRE(eventually([&] {
    processes.clear();
    workers = workers_of(run.pid(), &processes);
    return workers.size() >= 3;
  }));
  const auto bind_now = [](pid_t pid) {
    std::string env = read_text("/proc/" + std::to_string(pid) + "/environ");
    std::replace(env.begin(), env.end(), '\0', '\n');
    return ("\n" + env).find("\nLD_BIND_NOW=1\n") != std::string::npos;
  };
  std::set<pid_t> servers;
  for (const auto& w : workers) {
    INFO("worker " << w.pid << ": " << cmdline_of(w.pid));
    CHECK(bind_now(w.pid));
    if (const auto s = proc_stat(w.pid)) servers.insert(s->ppid);
  }
  REQUIRE(servers.size() == 1);  // forked by one fork server, not exec'd by the supervisor
  const pid_t server = *servers.begin();
  CHECK(server != run.pid());
  CHECK_THAT(cmdline_of(server), Catch::Contains("--launcher"));
  CHECK(bind_now(server));
  const int status = run.process().exit_code(30s);
  INFO(run.diagnostics());
  CHECK(status == 0);
}

namespace {

// What a record says of how its task ended, without what varies from run to run (times, pids, ids).
std::map<std::string, std::string> record_kinds(const Report& report) {
  std::map<std::string, std::string> kinds;
  for (const auto& r : report.results) {
    std::string kind = r.status + " " + r.error_class + " " + r.error_kind + " attempts=" + std::to_string(r.attempts);
    if (r.status == "cancelled") kind += " " + r.error_message.substr(0, r.error_message.find(" ("));
    kinds[r.topic] = kind;
  }
  return kinds;
}

}  // namespace

TEST_CASE("every mode writes the same records for the same events", "[supervisor][modes]") {
  std::map<std::string, std::map<std::string, std::string>> finished_by_mode;
  std::map<std::string, std::map<std::string, std::string>> stopped_by_mode;
  for (const std::string& mode : cbm::test::all_modes()) {
    INFO("--mode " << mode);
    {
      // Success, a task-fatal error, retries exhausted, a timeout.
      Simulator sim;
      SupervisorRun run(sim.base_url(), {.topics = {"fine", "unsafe [[fault:400_1301]]",
                                                    "broken [[fault:500_1234]]", "stuck [[fault:hang]]"},
                                         .args = {"--timeout", "1", "--kill-grace", "0.5", "--max-retries", "1",
                                                  "--concurrency", "4", "--quiet", "--mode", mode}});
      const int status = run.process().exit_code(60s);
      INFO(run.diagnostics());
      REQUIRE(status == 1);
      finished_by_mode[mode] = record_kinds(run.report());
    }
    {
      // Cancelled in flight (a second signal) and cancelled before starting.
      Simulator sim;
      SupervisorRun run(sim.base_url(), {.topics = {"hung 1 [[fault:hang]]", "hung 2 [[fault:hang]]", "queued 1",
                                                    "queued 2"},
                                         .args = {"--concurrency", "2", "--quiet", "--mode", mode}});
      REQUIRE(eventually([&] { return in_flight(sim) == 2; }));
      run.process().signal(SIGTERM);
      // Two signals sent at once may arrive as one: the second follows the drain it escalates.
      REQUIRE(eventually([&] { return run.log().find("draining") != std::string::npos; }));
      run.process().signal(SIGTERM);
      const int status = run.process().exit_code(30s);
      INFO(run.diagnostics());
      REQUIRE(status == 143);
      stopped_by_mode[mode] = record_kinds(run.report());
    }
  }
  const auto& finished = finished_by_mode.begin()->second;
  CHECK(finished.at("fine") == "succeeded   attempts=1");
  CHECK(finished.at("unsafe [[fault:400_1301]]") == "failed task_fatal api attempts=1");
  CHECK(finished.at("broken [[fault:500_1234]]") == "failed retryable api attempts=2");
  CHECK(finished.at("stuck [[fault:hang]]") == "failed retryable timeout attempts=2");
  const auto& stopped = stopped_by_mode.begin()->second;
  CHECK(stopped.at("hung 1 [[fault:hang]]") ==
        "cancelled task_fatal cancelled attempts=1 cancelled: the run was stopped during the attempt");
  CHECK(stopped.at("queued 1") ==
        "cancelled task_fatal cancelled attempts=0 cancelled: the run was stopped before the task started");
  for (const auto& [mode, kinds] : finished_by_mode) {
    INFO("--mode " << mode);
    CHECK(kinds == finished);
  }
  for (const auto& [mode, kinds] : stopped_by_mode) {
    INFO("--mode " << mode);
    CHECK(kinds == stopped);
  }
}

TEST_CASE("workers SIGKILLed every 30 ms while tasks keep finishing are restarted without limit",
          "[supervisor][chaos]") {
  // Default --max-restarts (20 within 10 s) and --max-retries: the kills outnumber the restart limit,
  // but work keeps finishing, so the pool is not broken (an OOM killer, an operator) and the run goes on.
  Simulator sim({"--latency-dist", "uniform", "--latency-ms", "20", "--latency-max-ms", "40"});
  const auto topics = numbered_topics("killed often", 1000);
  constexpr std::size_t kConcurrency = 8;
  SupervisorRun run(sim.base_url(),
                    {.topics = topics, .args = {"--concurrency", std::to_string(kConcurrency), "--quiet"}});
  ChaosMonkey chaos(run.pid(), kConcurrency, 30ms, 30ms);
  const int status = run.process().exit_code(180s);
  chaos.stop();
  const int kills = chaos.kills();
  INFO("kills " << kills << "\n" << run.diagnostics().substr(0, 4000));
  REQUIRE(status == 0);
  CHECK(kills > 20);  // more than the default --max-restarts: the old rule would have aborted
  const Report report = run.report();
  require_each_topic_exactly_once(report, topics);
  CHECK(report.count("succeeded") == topics.size());
}
