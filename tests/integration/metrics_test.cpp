// --metrics-addr as a monitor's operator uses it: a real supervisor against the simulator, scraped over
// real HTTP, its exposition parsed strictly and checked against the report the run writes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <regex>

#include "exposition.hpp"
#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, eventually, ...
namespace fs = std::filesystem;

namespace {


// A supervisor run in its own directory; `args` follow the base URL, report, log and topics file.
class Run {
 public:
  Run(const std::string& base_url, const std::vector<std::string>& topics,
      const std::vector<std::string>& args) {
    std::string text;
    for (const auto& t : topics) text += t + "\n";
    write_text(dir_ / "topics.txt", text);
    std::vector<std::string> argv = {cbm::test::supervisor_path(),
                                     "--base-url",
                                     base_url,
                                     "--output",
                                     (dir_ / "report.json").string(),
                                     "--log-file",
                                     (dir_ / "run.log").string(),
                                     "--topics-file",
                                     (dir_ / "topics.txt").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<Subprocess>(argv, supervisor_spawn_options(dir_.path()));
  }

  Subprocess& process() { return *process_; }
  std::string log() const { return read_text(dir_ / "run.log"); }
  fs::path report_path() const { return dir_ / "report.json"; }
  std::string diagnostics() const { return "stderr:\n" + process_->err() + "\nlog:\n" + log(); }

  // The URL the run logged for its metrics ("metrics: serving http://127.0.0.1:PORT/metrics").
  std::string metrics_url() {
    static const std::regex serving(R"(metrics: serving (http://127\.0\.0\.1:(\d+)/metrics))");
    std::smatch m;
    std::string text;
    const bool found = eventually([&] {
      text = log();
      return std::regex_search(text, m, serving);
    });
    INFO(diagnostics());
    REQUIRE(found);
    port_ = std::stoi(m[2].str());
    return m[1].str();
  }
  int port() const { return port_; }

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
};


Exposition scrape(const std::string& url) {
  const auto reply = cbm::test::http_request("GET", url);
  INFO(reply.body);
  REQUIRE(reply.status == 200);
  try {
    return cbm::test::parse_exposition(reply.body);
  } catch (const std::exception& e) {
    FAIL("the exposition does not parse: " << e.what() << "\n" << reply.body);
  }
  return {};
}

struct ReportSummary {
  double total = -1, succeeded = -1, attempts = -1, rounds = -1, prompt_tokens = -1, completion_tokens = -1;
};

// The summary of the last report the monitor wrote (rewritten atomically after every round).
std::optional<ReportSummary> report_summary(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  const std::string text = read_text(path);
  rapidjson::Document d;
  d.Parse(text.c_str());
  if (d.HasParseError() || !d.IsObject()) return std::nullopt;
  const auto& s = d["summary"];
  ReportSummary r;
  r.total = s["total_tasks"].GetDouble();
  r.succeeded = s["successful_tasks"].GetDouble();
  r.attempts = s["total_attempts"].GetDouble();
  r.rounds = s["iterations_completed"].GetDouble();
  r.prompt_tokens = s["usage"]["prompt_tokens"].GetDouble();
  r.completion_tokens = s["usage"]["completion_tokens"].GetDouble();
  return r;
}

}  // namespace

TEST_CASE("a monitor serves Prometheus metrics over HTTP that agree with its report", "[metrics]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  const std::string flaky = "flaky [[fault:500_1234*1]]";
  const std::string crashy = "crashy [[fault:kill_client*1]]";  // kills the worker process: not in threading
  std::vector<std::string> topics = {"alpha", "beta", flaky};
  if (mode == "multiprocessing") topics.push_back(crashy);
  const double n = static_cast<double>(topics.size());
  // A pause between rounds long enough that the report and the metrics can be seen at rest.
  Run run(sim.base_url(), topics,
          {"--iterations", "0", "--delay", "0.3", "--concurrency", "4", "--mode", mode, "--metrics-addr",
           "127.0.0.1:0", "--quiet"});
  const std::string url = run.metrics_url();

  // A client that connects and says nothing does not hold up a scrape.
  const int silent = connect_loopback(run.port());
  REQUIRE(silent >= 0);

  // Wait for two rounds, then for a moment where the metrics and the last report describe the same
  // state of the run (nothing finished since the report was written): they must then agree exactly.
  Exposition m;
  std::optional<ReportSummary> report;
  const bool consistent = eventually(
      [&] {
        m = scrape(url);
        report = report_summary(run.report_path());
        return report && m.value("cbm_rounds_completed_total") >= 2 &&
               m.value("cbm_rounds_completed_total") == report->rounds &&
               m.total("cbm_tasks_total") == report->total &&
               m.total("cbm_attempts_total") == report->attempts;
      },
      60s);
  INFO(run.diagnostics());
  REQUIRE(consistent);
  ::close(silent);

  const double rounds = m.value("cbm_rounds_completed_total");
  CHECK(m.value("cbm_tasks_total", {{"outcome", "succeeded"}}) == rounds * n);
  CHECK(m.value("cbm_tasks_total", {{"outcome", "succeeded"}}) == report->succeeded);
  CHECK(m.value("cbm_tasks_total", {{"outcome", "failed"}}) == 0);
  CHECK(m.value("cbm_tasks_total", {{"outcome", "cancelled"}}) == 0);
  // A `*1` marker faults the first request of each step that carries it: in round 1 the flaky topic
  // fails its search, then (its search answered) its analysis, then succeeds; the crashy one kills its
  // worker the same two times.
  const double crashes = mode == "multiprocessing" ? 2 : 0;
  CHECK(m.value("cbm_attempts_total", {{"result", "ok"}}) == rounds * n);
  CHECK(m.value("cbm_attempts_total", {{"result", "retryable"}}) == 2 + crashes);
  CHECK(m.value("cbm_attempts_total", {{"result", "task_fatal"}}) == 0);
  CHECK(m.value("cbm_retries_total", {{"kind", "api"}}) == 2);
  CHECK(m.value("cbm_retries_total", {{"kind", "crash"}}) == crashes);
  CHECK(m.total("cbm_retries_total") == 2 + crashes);
  CHECK(m.value("cbm_worker_restarts_total") == crashes);
  // Tokens: the platform's usage of every call, as the report sums it.
  CHECK(m.total("cbm_tokens_total", {{"kind", "prompt"}}) == report->prompt_tokens);
  CHECK(m.total("cbm_tokens_total", {{"kind", "completion"}}) == report->completion_tokens);
  CHECK(report->prompt_tokens > 0);
  // Every call that ended is timed, failed ones included: each successful attempt's search and analysis,
  // and the flaky topic's failed search, then its answered search and failed analysis. A crashed
  // attempt's calls died with its worker.
  CHECK(m.total("cbm_request_duration_seconds_count", {{"step", "search"}}) == rounds * n + 2);
  CHECK(m.total("cbm_request_duration_seconds_count", {{"step", "analysis"}}) == rounds * n + 1);
  CHECK(m.value("cbm_task_duration_seconds_count", {{"outcome", "succeeded"}}) == rounds * n);
  CHECK(m.value("cbm_task_duration_seconds_sum", {{"outcome", "succeeded"}}) > 0);
  // Each call is labelled with its model: the defaults, the same for both steps.
  CHECK(m.value("cbm_tokens_total", {{"kind", "prompt"}, {"model", "glm-4.5-air"}}) == report->prompt_tokens);
  // Every round succeeded (the flaky ones on a retry): the staleness gauge is set, after the start.
  CHECK(m.value("cbm_last_round_success_timestamp_seconds") >= m.value("process_start_time_seconds"));
  CHECK(m.total("cbm_build_info") == 1);
  CHECK(m.value("cbm_concurrency_limit") == 4);
  CHECK(m.value("cbm_in_flight") >= 0);
  CHECK(m.value("cbm_in_flight") <= 4);

  // The exact content type, and answers to what is not a scrape; none of it disturbs the run.
  const std::string ok = raw_exchange(run.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_THAT(ok, Catch::StartsWith("HTTP/1.1 200 OK\r\n") &&
                     Catch::Contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  CHECK_THAT(raw_exchange(run.port(), "GET /nope HTTP/1.1\r\n\r\n"), Catch::StartsWith("HTTP/1.1 404 "));
  CHECK_THAT(raw_exchange(run.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
             Catch::StartsWith("HTTP/1.1 405 ") && Catch::Contains("Allow: GET, HEAD"));
  CHECK_THAT(raw_exchange(run.port(), "\x16\x03\x01 garbage\r\n\r\n"), Catch::StartsWith("HTTP/1.1 400 "));
  CHECK_THAT(raw_exchange(run.port(), "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a')),
             Catch::StartsWith("HTTP/1.1 431 "));
  const std::string head = raw_exchange(run.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK_THAT(head, Catch::StartsWith("HTTP/1.1 200 OK\r\n") && Catch::EndsWith("\r\n\r\n"));
  CHECK(eventually([&] { return scrape(url).value("cbm_rounds_completed_total") > rounds; }, 30s));

  run.process().signal(SIGTERM);
  CHECK(run.process().exit_code(30s) == 143);
  // The server went with the run.
  const int after = connect_loopback(run.port());
  CHECK(after < 0);
  if (after >= 0) ::close(after);
}

TEST_CASE("a metrics address that cannot be bound exits 2 naming --metrics-addr, before anything is sent",
          "[metrics]") {
  Simulator sim;
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(taken >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(taken, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(taken, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string in_use = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  Run run(sim.base_url(), {"alpha"}, {"--metrics-addr", in_use});
  const int status = run.process().exit_code(30s);
  ::close(taken);
  INFO(run.diagnostics());
  CHECK(status == 2);
  CHECK_THAT(run.process().err(),
             Catch::Contains("--metrics-addr '" + in_use + "'") && Catch::Contains("in use"));
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a malformed --metrics-addr exits 2 naming the flag and the value", "[metrics]") {
  for (const std::string bad :
       {"nonsense", "127.0.0.1:", ":9464", "127.0.0.1:65536", "127.0.0.1:http", "::1:9464"}) {
    Run run("http://127.0.0.1:9/api/paas/v4", {"alpha"}, {"--metrics-addr", bad});
    const int status = run.process().exit_code(30s);
    INFO(bad << "\n" << run.process().err());
    CHECK(status == 2);
    CHECK_THAT(run.process().err(), Catch::Contains("--metrics-addr: '" + bad + "'"));
  }
}
