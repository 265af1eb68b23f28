// The library as a program embeds it (include/concurrent_bigmodel/executor.hpp): real workers (or
// threads) against the simulator, results through the return value and the callback, stops from other
// threads, several executors in one process, and nothing left behind when a call returns.
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "concurrent_bigmodel/executor.hpp"
#include "simulator.hpp"

namespace lib = concurrent_bigmodel;
using namespace std::chrono_literals;
using cbm::test::Simulator;

namespace {

lib::Config config_for(const Simulator& sim, lib::Mode mode) {
  lib::Config c;
  c.api_key = "sk-test-library";
  c.base_url = sim.base_url();
  c.mode = mode;
  c.concurrency = 2;
  c.delay = 0ms;
  c.timeout = 20s;
  c.worker_executable = CBM_WORKER_PATH;
  return c;
}

std::vector<std::string> numbered_topics(const std::string& stem, int n) {
  std::vector<std::string> topics;
  for (int i = 0; i < n; ++i) topics.push_back(stem + " " + std::to_string(i));
  return topics;
}

// Every (round, id) of `rounds` x `topics` has exactly one result, of the right topic.
void require_one_result_each(const std::vector<lib::Result>& results, const std::vector<std::string>& topics,
                             std::uint32_t rounds) {
  std::map<std::pair<std::uint32_t, std::uint64_t>, int> seen;
  for (const auto& r : results) {
    REQUIRE(r.id < topics.size());
    CHECK(r.topic == topics[r.id]);
    ++seen[{r.round, r.id}];
  }
  CHECK(seen.size() == topics.size() * rounds);
  for (const auto& [key, count] : seen) CHECK(count == 1);
}

// As require_one_result_each for a stopped run: a topic the stop left unread is in one not_read range
// of its round instead, and the summary counts those.
void require_one_result_or_unread_each(const lib::Report& report, const std::vector<std::string>& topics) {
  std::vector<std::string> read = topics;
  std::uint64_t unread = 0;
  for (const auto& range : report.not_read) {
    REQUIRE(range.round == 1);
    REQUIRE(range.end_id == std::optional<std::uint64_t>(topics.size()));  // a list: its size is known
    REQUIRE(range.first_id <= topics.size());
    read.resize(range.first_id);
    unread += topics.size() - range.first_id;
  }
  CHECK(report.not_read.size() <= 1);
  require_one_result_each(report.results, read, 1);
  CHECK(report.summary.not_read == std::optional<std::uint64_t>(unread));
  CHECK(report.summary.total_tasks == read.size());
}

std::size_t count_status(const std::vector<lib::Result>& results, lib::Status s) {
  return static_cast<std::size_t>(
      std::count_if(results.begin(), results.end(), [s](const lib::Result& r) { return r.status == s; }));
}

std::size_t thread_count() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.' ? 1 : 0;
    ::closedir(d);
  }
  return n;
}

std::string blocked_signals() {
  sigset_t set;
  pthread_sigmask(SIG_SETMASK, nullptr, &set);
  std::string bits;
  for (int s = 1; s < SIGRTMAX; ++s) bits += sigismember(&set, s) ? '1' : '0';
  return bits;
}

std::vector<void (*)(int)> dispositions() {
  std::vector<void (*)(int)> handlers;
  for (int s : {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    struct sigaction sa {};
    ::sigaction(s, nullptr, &sa);
    handlers.push_back(sa.sa_handler);
  }
  return handlers;
}

lib::Mode any_mode() { return GENERATE(lib::Mode::multiprocessing, lib::Mode::threading, lib::Mode::asyncio); }

}  // namespace

TEST_CASE("execute_concurrent returns one result per topic and round, with the server's verdicts", "[library]") {
  Simulator sim;
  const lib::Mode mode = any_mode();
  lib::Executor executor(config_for(sim, mode));
  std::vector<lib::Result> called;
  executor.on_result([&](const lib::Result& r) { called.push_back(r); });
  const std::vector<std::string> topics = {"Solid-state batteries", "Rejected [[fault:400_1301]]", "RISC-V adoption"};

  const lib::Report report = executor.execute_concurrent(topics, 2);

  require_one_result_each(report.results, topics, 2);
  CHECK(called.size() == report.results.size());
  for (const auto& r : report.results) {
    if (r.id == 1) {
      CHECK(r.status == lib::Status::failed);
      REQUIRE(r.error);
      CHECK(r.error->error_class == "task_fatal");
      CHECK(r.error->code == "1301");
      CHECK_FALSE(r.error_message().empty());
    } else {
      CHECK(r.success());
      CHECK_FALSE(r.analysis.empty());
      CHECK(r.usage.total_tokens > 0);
    }
  }
  CHECK(report.summary.total_tasks == 6);
  CHECK(report.summary.successful_tasks == 4);
  CHECK(report.summary.failed_tasks == 2);
  CHECK_FALSE(report.summary.interrupted);
  CHECK_FALSE(report.summary.report_written);  // no output asked for: no file
  CHECK(report.summary.exit_status == 1);
}

TEST_CASE("stop() from another thread drains: the rest read is cancelled, the unread reported, no topic lost",
          "[library]") {
  Simulator sim({"--latency-ms", "60"});
  const lib::Mode mode = any_mode();
  lib::Executor executor(config_for(sim, mode));
  std::mutex mu;
  std::condition_variable cv;
  std::size_t finished = 0;
  std::set<std::thread::id> callback_threads;
  executor.on_result([&](const lib::Result&) {
    std::lock_guard lock(mu);
    ++finished;
    callback_threads.insert(std::this_thread::get_id());
    cv.notify_all();
  });
  std::thread stopper([&] {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished >= 2; });
    executor.stop();
  });
  const auto topics = numbered_topics("drained topic", 16);

  const lib::Report report = executor.execute_concurrent(topics);
  stopper.join();

  require_one_result_or_unread_each(report, topics);
  CHECK(report.not_read.size() == 1);  // 16 topics: more than 2 running and a read-ahead of 8
  CHECK(count_status(report.results, lib::Status::succeeded) >= 2);
  CHECK(count_status(report.results, lib::Status::cancelled) >= 1);
  CHECK(count_status(report.results, lib::Status::failed) == 0);
  CHECK(report.summary.interrupted);
  CHECK(report.summary.interrupted_by_signal == 0);
  CHECK(report.summary.exit_status == 1);
  if (mode == lib::Mode::multiprocessing) {
    // Documented: the supervisor loop runs on the caller's thread, and so does the callback.
    CHECK(callback_threads == std::set<std::thread::id>{std::this_thread::get_id()});
  }
}

TEST_CASE("stop_now() from the callback ends the run at once with every topic reported", "[library]") {
  Simulator sim({"--latency-ms", "60"});
  const lib::Mode mode = any_mode();
  lib::Executor executor(config_for(sim, mode));
  executor.on_result([&](const lib::Result&) { executor.stop_now(); });
  const auto topics = numbered_topics("stopped topic", 12);

  const lib::Report report = executor.execute_concurrent(topics, 0);  // a monitor: only a stop ends it

  require_one_result_or_unread_each(report, topics);
  CHECK(count_status(report.results, lib::Status::cancelled) >= 1);
  CHECK(report.summary.interrupted);
}

TEST_CASE("a stop requested before the run applies to it: no topic is read, all are reported not read",
          "[library]") {
  Simulator sim;
  const lib::Mode mode = any_mode();
  lib::Executor executor(config_for(sim, mode));
  executor.stop();
  const std::vector<std::string> topics = {"never sent 1", "never sent 2"};

  const lib::Report report = executor.execute_concurrent(topics);

  CHECK(report.results.empty());
  REQUIRE(report.not_read.size() == 1);
  CHECK(report.not_read[0].first_id == 0);
  CHECK(report.summary.not_read == std::optional<std::uint64_t>(topics.size()));
  CHECK(report.summary.exit_status == 1);
  CHECK(sim.requests_total() == 0);
  // The stop was for that run: the next one runs normally.
  const lib::Report again = executor.execute_concurrent(topics);
  CHECK(again.summary.successful_tasks == topics.size());
}

TEST_CASE("stop_current reaches only a run in progress: with none, the next run is not stopped", "[library]") {
  Simulator sim({"--latency-ms", "60"});
  const lib::Mode mode = any_mode();
  lib::Executor executor(config_for(sim, mode));
  CHECK_FALSE(executor.stop_current(true, SIGINT));  // no run: nothing kept
  const auto topics = numbered_topics("current topic", 6);
  const lib::Report quiet = executor.execute_concurrent(topics);
  CHECK(quiet.summary.successful_tasks == topics.size());
  CHECK_FALSE(quiet.summary.interrupted);

  bool took = false;
  executor.on_result([&](const lib::Result&) {
    if (!took) took = executor.stop_current(true);
  });
  const lib::Report stopped = executor.execute_concurrent(topics);
  CHECK(took);
  CHECK(stopped.summary.interrupted);
  require_one_result_or_unread_each(stopped, topics);
}

TEST_CASE("executors share no state: two at once and one after another in one process", "[library]") {
  Simulator sim;
  const lib::Mode mode = any_mode();
  const auto topics_a = numbered_topics("first executor", 5);
  const auto topics_b = numbered_topics("second executor", 5);
  lib::Report a;
  lib::Report b;
  {
    lib::Executor ea(config_for(sim, mode));
    lib::Executor eb(config_for(sim, mode));
    std::thread other([&] { b = eb.execute_concurrent(topics_b); });
    a = ea.execute_concurrent(topics_a);
    other.join();
  }
  require_one_result_each(a.results, topics_a, 1);
  require_one_result_each(b.results, topics_b, 1);
  CHECK(a.summary.exit_status == 0);
  CHECK(b.summary.exit_status == 0);

  lib::Executor later(config_for(sim, mode));
  const lib::Report c = later.execute_concurrent(topics_a);
  CHECK(c.summary.successful_tasks == topics_a.size());
}

TEST_CASE("a call leaves no thread, child process, signal mask or handler behind", "[library]") {
  Simulator sim;
  const lib::Mode mode = any_mode();
  // A first call starts what lives as long as the process and is not ours to stop (a sanitizer's
  // background thread, say): the call measured is the second.
  lib::Executor(config_for(sim, mode)).execute_concurrent(numbered_topics("warm-up", 1));
  const auto threads_before = thread_count();
  const auto children_before = cbm::test::children_of(::getpid());
  const auto mask_before = blocked_signals();
  const auto handlers_before = dispositions();
  {
    lib::Executor executor(config_for(sim, mode));
    const lib::Report report = executor.execute_concurrent(numbered_topics("tidy", 4));
    CHECK(report.summary.exit_status == 0);
    CHECK(thread_count() == threads_before);
    CHECK(cbm::test::children_of(::getpid()) == children_before);
  }
  CHECK(blocked_signals() == mask_before);
  CHECK(dispositions() == handlers_before);
  CHECK(cbm::test::shm_segments("cbm." + std::to_string(::getuid()) + "." + std::to_string(::getpid()) + ".").empty());
}

TEST_CASE("a callback that throws stops the run and its exception reaches the caller", "[library]") {
  Simulator sim({"--latency-ms", "30"});
  lib::Executor executor(config_for(sim, any_mode()));
  executor.on_result([](const lib::Result&) { throw std::runtime_error("callback refused"); });
  CHECK_THROWS_WITH(executor.execute_concurrent(numbered_topics("throwing", 8)), "callback refused");
}

TEST_CASE("a missing worker program and a bad config are clear errors", "[library]") {
  Simulator sim;
  lib::Config c = config_for(sim, lib::Mode::multiprocessing);
  c.worker_executable = "/nonexistent/concurrent_bigmodel_worker";
  lib::Executor executor(c);
  CHECK_THROWS_WITH(executor.execute_concurrent({"a topic"}),
                    Catch::Contains("/nonexistent/concurrent_bigmodel_worker") &&
                        Catch::Contains("worker_executable"));
  CHECK(sim.requests_total() == 0);

  lib::Config no_key = config_for(sim, lib::Mode::threading);
  no_key.api_key.clear();
  CHECK_THROWS_WITH(lib::Executor(no_key), Catch::Contains("api_key"));
  lib::Config bad_url = config_for(sim, lib::Mode::threading);
  bad_url.base_url = "ftp://example.com";
  CHECK_THROWS_WITH(lib::Executor(bad_url), Catch::Contains("base_url"));
  lib::Config bad_prompts = config_for(sim, lib::Mode::threading);
  bad_prompts.prompts = "[analysis.user]\nTopic: {topik}\n";
  // A placeholder is checked against the run's input (rows may bring fields), when the run starts.
  lib::Executor with_bad_prompts(bad_prompts);
  CHECK_THROWS_WITH(with_bad_prompts.run({"a topic"}), Catch::Contains("unknown placeholder {topik}"));
  bad_prompts.prompts = "[analysis.user]\nTopic: {topic\n";
  CHECK_THROWS_AS(lib::Executor(bad_prompts), std::invalid_argument);
  lib::Config forever = config_for(sim, lib::Mode::threading);
  forever.timeout = std::chrono::hours(24 * 365 * 400);  // a deadline this far would overflow
  CHECK_THROWS_WITH(lib::Executor(forever), Catch::Contains("timeout"));

  // Topics are checked as the CLI checks them, before anything is sent (and billed).
  lib::Executor threads(config_for(sim, lib::Mode::threading));
  CHECK_THROWS_WITH(threads.execute_concurrent({"fine", "  "}), Catch::Contains("topic 1 is empty"));
  CHECK_THROWS_WITH(threads.execute_concurrent({std::string("bad \xC3\x28 utf8")}), Catch::Contains("topic 0"));
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a report and journal are written only when asked for", "[library]") {
  Simulator sim;
  cbm::test::TempDir dir;
  lib::Config c = config_for(sim, lib::Mode::threading);
  c.output = dir / "report.json";
  lib::Executor executor(c);
  const lib::Report report = executor.execute_concurrent({"reported topic"});
  CHECK(report.summary.report_written);
  const std::string text = cbm::test::read_text(dir / "report.json");
  CHECK(text.find("\"successful_tasks\":1") != std::string::npos);
  CHECK(std::filesystem::exists(dir / "report.journal.jsonl"));
  CHECK(text.find("sk-test-library") == std::string::npos);
}

TEST_CASE("the library runs rows: fields fill the prompts, reach each Result and the results stream",
          "[library][rows]") {
  Simulator sim;
  cbm::test::TempDir dir;
  const lib::Mode mode = GENERATE(lib::Mode::multiprocessing, lib::Mode::threading, lib::Mode::asyncio);
  lib::Config c = config_for(sim, mode);
  c.search = false;
  c.prompts = "[analysis.user]\nAnalyse {topic} for {region}\n";
  c.results_jsonl = dir / "results.jsonl";
  lib::Executor executor(c);
  const lib::Report report =
      executor.execute_rows({{"Tariffs", {{"region", "EU"}}}, {"Tariffs", {{"region", "US"}}}});
  REQUIRE(report.results.size() == 2);
  for (const auto& r : report.results) {
    REQUIRE(r.fields.size() == 1);
    CHECK_THAT(r.analysis, Catch::StartsWith("Analysis of Analyse Tariffs for " + r.fields[0].second));
    CHECK(r.duplicate_of == std::nullopt);  // one topic, other fields: two tasks
  }
  const std::string streamed = cbm::test::read_text(dir / "results.jsonl");
  CHECK(std::count(streamed.begin(), streamed.end(), '\n') == 2);

  // A row without a field the prompts use is refused, naming it; so is a placeholder no row has.
  CHECK_THROWS_WITH(executor.run_rows({{"a", {{"region", "EU"}}}, {"b", {}}}),
                    Catch::Contains("row 1 has no field 'region'"));
  CHECK_THROWS_WITH(executor.run({"plain"}), Catch::Contains("unknown placeholder {region}"));
}

TEST_CASE("the library checks the model and search settings naming the Config field", "[library][wire]") {
  Simulator sim;
  const auto refused = [&](auto change) {
    lib::Config c = config_for(sim, lib::Mode::threading);
    change(c);
    try {
      lib::Executor executor(c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(refused([](lib::Config& c) { c.temperature = 1.5; }), Catch::Contains("temperature: 1.5"));
  CHECK_THAT(refused([](lib::Config& c) { c.max_tokens = 0; }), Catch::Contains("max_tokens"));
  CHECK_THAT(refused([](lib::Config& c) { c.search_count = 51; }), Catch::Contains("search_count"));
  CHECK_THAT(refused([](lib::Config& c) { c.search_engine = "bing"; }), Catch::Contains("search_engine"));
  CHECK_THAT(refused([](lib::Config& c) { c.chat_model = "glm-4.5-aq"; }),
             Catch::Contains("chat_model: 'glm-4.5-aq'") && Catch::Contains("allow_unlisted_model"));
  CHECK_THAT(refused([](lib::Config& c) { c.api_flavor = lib::ApiFlavor::openai; }),
             Catch::Contains("search"));
  CHECK(refused([](lib::Config& c) {
          c.chat_model = "glm-4.5-aq";
          c.allow_unlisted_model = true;
        }) == "accepted");
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a library Result's steps carry the request_id sent and the platform's answer id",
          "[library][wire]") {
  Simulator sim;
  lib::Config c = config_for(sim, any_mode());
  c.search_via = lib::SearchVia::api;
  lib::Executor executor(c);
  const lib::Report report = executor.execute_concurrent({"traced ids"});
  REQUIRE(report.results.size() == 1);
  const auto& steps = report.results[0].steps;
  REQUIRE(steps.size() == 2);
  CHECK(steps[0].model == "search_std");
  for (const auto& step : steps) {
    CHECK_THAT(step.request_id, Catch::StartsWith("cbm-"));
    CHECK_FALSE(step.response_id.empty());
  }
  const auto requests = sim.recent_requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].is_web_search());
  CHECK(requests[0].json()["request_id"].GetString() == steps[0].request_id);
}

TEST_CASE("Config::accept_incomplete and Config::on_quota reach the run", "[library][errors]") {
  Simulator sim;
  const lib::Mode mode = any_mode();
  SECTION("an analysis cut short fails by default, its partial text and finish_reason kept") {
    lib::Config config = config_for(sim, mode);
    config.search = false;
    lib::Executor executor(config);
    const lib::Report report = executor.execute_concurrent({"Cut [[fault:length]]"});
    REQUIRE(report.results.size() == 1);
    const lib::Result& r = report.results[0];
    CHECK(r.status == lib::Status::failed);
    REQUIRE(r.error);
    CHECK(r.error->kind == "incomplete");
    CHECK_FALSE(r.analysis.empty());
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].finish_reason == "length");
  }
  SECTION("accept_incomplete makes it a success") {
    lib::Config config = config_for(sim, mode);
    config.search = false;
    config.accept_incomplete = true;
    lib::Executor executor(config);
    const lib::Report report = executor.execute_concurrent({"Cut [[fault:length]]"});
    REQUIRE(report.results.size() == 1);
    CHECK(report.results[0].success());
  }
  SECTION("on_quota stop aborts the run at a usage cap") {
    lib::Config config = config_for(sim, mode);
    config.on_quota = lib::OnQuota::stop;
    lib::Executor executor(config);
    const lib::Report report = executor.execute_concurrent(numbered_topics("Capped [[fault:quota_reset_600s]]", 6));
    REQUIRE(report.summary.abort_reason);
    CHECK_THAT(*report.summary.abort_reason, Catch::Contains("1308") && Catch::Contains("--resume"));
    CHECK(report.summary.exit_status == 3);
  }
}
