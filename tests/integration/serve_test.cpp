// `concurrent_bigmodel serve` as its users call it: real HTTP requests to the service, which runs its
// shared pool against the simulator.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;  // the fixtures: Simulator, Subprocess, TempDir, eventually, ...

namespace {


// The service on a free port of 127.0.0.1, its URL read from its "serving on" line.
class Service {
 public:
  Service(const Simulator& sim, std::vector<std::string> args) {
    std::vector<std::string> argv = {cbm::test::supervisor_path(),
                                     "serve",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--base-url",
                                     sim.base_url(),
                                     "--log-file",
                                     (dir_ / "serve.log").string(),
                                     "--delay",
                                     "0",
                                     "--no-search",
                                     "--quiet"};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<Subprocess>(argv, supervisor_spawn_options(dir_.path()));
    const bool up = eventually([&] { return process_->out().find('\n') != std::string::npos; });
    INFO(diagnostics());
    REQUIRE(up);
    const std::string out = process_->out();
    const std::string prefix = "serving on ";
    REQUIRE(out.rfind(prefix, 0) == 0);
    url_ = out.substr(prefix.size(), out.find('\n') - prefix.size());
  }
  ~Service() {
    if (!process_->wait_for(0ms)) {
      process_->signal(SIGKILL);
      process_->wait_for(5s);
    }
  }

  const std::string& url() const { return url_; }
  Subprocess& process() { return *process_; }
  std::string diagnostics() const {
    return "stdout:\n" + process_->out() + "\nstderr:\n" + process_->err() + "\nlog:\n" +
           cbm::test::read_text(dir_ / "serve.log");
  }

  HttpReply analyze(const std::string& body) const { return http_request("POST", url_ + "/analyze", body); }

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  std::string url_;
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string analyze_body(const std::vector<std::string>& topics, int concurrency = 0) {
  // Appended piece by piece: g++ 12 at -O3 misreads `"," + std::string` (a prepend to a temporary) as an
  // overlapping memcpy (-Wrestrict, GCC bug 105329).
  std::string body = "{\"topics\":[";
  for (std::size_t i = 0; i < topics.size(); ++i) {
    if (i > 0) body += ',';
    body += json_string(topics[i]);
  }
  body += ']';
  if (concurrency > 0) {
    body += ",\"concurrency\":";
    body += std::to_string(concurrency);
  }
  return body + "}";
}

std::vector<std::string> numbered(const std::string& stem, std::size_t n) {
  std::vector<std::string> topics;
  for (std::size_t i = 0; i < n; ++i) topics.push_back(stem + " " + std::to_string(i));
  return topics;
}

rapidjson::Document parse(const HttpReply& reply) {
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  INFO("body: " << reply.body.substr(0, 2000));
  REQUIRE_FALSE(doc.HasParseError());
  REQUIRE(doc.IsObject());
  return doc;
}

// The reply is the report of exactly `topics`: in their order, ids their indexes, each `status`.
void require_report(const HttpReply& reply, const std::vector<std::string>& topics,
                    const std::string& status = "succeeded") {
  INFO("body: " << reply.body.substr(0, 2000));
  REQUIRE(reply.status == 200);
  const rapidjson::Document doc = parse(reply);
  REQUIRE(doc["summary"]["total_tasks"].GetUint64() == topics.size());
  const auto& results = doc["results"].GetArray();
  REQUIRE(results.Size() == topics.size());
  for (rapidjson::SizeType i = 0; i < results.Size(); ++i) {
    CHECK(results[i]["topic"].GetString() == topics[i]);
    CHECK(results[i]["id"].GetUint64() == i);
    CHECK(results[i]["status"].GetString() == status);
  }
  if (status == "succeeded") REQUIRE(doc["summary"]["successful_tasks"].GetUint64() == topics.size());
}

// A 4xx whose JSON body names the problem.
void require_rejected(const HttpReply& reply, long status, const std::string& mentions) {
  INFO("body: " << reply.body);
  REQUIRE(reply.status == status);
  const rapidjson::Document doc = parse(reply);
  REQUIRE(doc["error"].IsString());
  REQUIRE(std::string(doc["error"].GetString()).find(mentions) != std::string::npos);
}

}  // namespace

TEST_CASE("serve: GET /healthz says the service is up", "[serve]") {
  Simulator sim;
  Service service(sim, {});
  const HttpReply reply = http_request("GET", service.url() + "/healthz");
  REQUIRE(reply.status == 200);
  const rapidjson::Document doc = parse(reply);
  REQUIRE(std::string(doc["status"].GetString()) == "ok");
  REQUIRE(doc["in_flight"].GetUint64() == 0);
  REQUIRE(doc["requests"].GetUint64() == 0);
}

TEST_CASE("serve: a POST /analyze is answered with the report of its topics, in their order", "[serve]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  Simulator sim({"--latency-ms", "20"});
  Service service(sim, {"--mode", mode});
  const auto topics = numbered("serve order", 5);
  require_report(service.analyze(analyze_body(topics, 2)), topics);
  // The pool stays up for the next request.
  const auto more = numbered("serve again", 3);
  require_report(service.analyze(analyze_body(more)), more);
}

TEST_CASE("serve: concurrent requests share one pool and its limit", "[serve]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  Simulator sim({"--latency-ms", "200"});
  Service service(sim, {"--mode", mode, "--concurrency", "4"});
  constexpr int kRequests = 4;
  std::vector<std::vector<std::string>> topics;
  std::vector<HttpReply> replies(kRequests);
  std::vector<std::string> errors(kRequests);
  for (int r = 0; r < kRequests; ++r) topics.push_back(numbered("shared pool " + std::to_string(r), 10));
  {
    std::vector<std::jthread> clients;
    for (int r = 0; r < kRequests; ++r) {
      clients.emplace_back([&, r] {
        try {
          replies[r] = service.analyze(analyze_body(topics[r], 2));
        } catch (const std::exception& e) {
          errors[r] = e.what();
        }
      });
    }
  }
  INFO(service.diagnostics());
  for (int r = 0; r < kRequests; ++r) {
    INFO("request " << r << " " << errors[r]);
    REQUIRE(errors[r].empty());
    require_report(replies[r], topics[r]);
  }
  const auto stats = sim.stats();
  CHECK(stats["requests_total"].GetInt64() == 4 * 10);
  // The pool's limit held across requests, and the requests did share it.
  REQUIRE(stats["peak_in_flight"].GetInt64() <= 4);
  REQUIRE(stats["peak_in_flight"].GetInt64() >= 2);
}

TEST_CASE("serve: a request's concurrency caps its share of the pool", "[serve]") {
  Simulator sim({"--latency-ms", "50"});
  Service service(sim, {"--concurrency", "4"});
  const auto topics = numbered("one at a time", 6);
  require_report(service.analyze(analyze_body(topics, 1)), topics);
  REQUIRE(sim.stats()["peak_in_flight"].GetInt64() == 1);
}

TEST_CASE("serve: bad requests get a 4xx naming the problem, and the service goes on", "[serve]") {
  Simulator sim;
  Service service(sim, {"--max-topics", "3"});
  require_rejected(service.analyze("{\"topics\": [\"a\""), 400, "invalid JSON at byte 15");
  require_rejected(service.analyze("[\"a\"]"), 400, "JSON object");
  require_rejected(service.analyze("{}"), 400, "topics: missing");
  require_rejected(service.analyze("{\"topics\": \"a\"}"), 400, "topics: must be an array");
  require_rejected(service.analyze("{\"topics\": []}"), 400, "topics: empty");
  require_rejected(service.analyze("{\"topics\": [\"a\", 7]}"), 400, "topics[1]: must be a string");
  require_rejected(service.analyze("{\"topics\": [\"a\", \"  \"]}"), 400, "topics[1]: empty");
  require_rejected(service.analyze("{\"topics\": [\"a\\u0000b\"]}"), 400, "topics[0]: contains a NUL byte");
  require_rejected(service.analyze("{\"topics\": [\"" + std::string(5000, 'x') + "\"]}"), 400,
                   "topics[0]: longer than 4096 bytes");
  require_rejected(service.analyze(analyze_body({"a", "b", "c", "d"})), 400, "more than the limit of 3");
  require_rejected(service.analyze("{\"topics\": [\"a\"], \"concurrency\": 0}"), 400, "concurrency");
  require_rejected(service.analyze("{\"topics\": [\"a\"], \"concurrency\": \"2\"}"), 400, "concurrency");
  require_rejected(service.analyze("{\"topics\": [\"" + std::string(9 * 1024 * 1024, 'x') + "\"]}"), 413,
                   "larger than");
  require_rejected(http_request("GET", service.url() + "/analyze"), 405, "POST");
  require_rejected(http_request("POST", service.url() + "/healthz", "{}"), 405, "GET");
  require_rejected(http_request("GET", service.url() + "/nowhere"), 404, "/analyze");
  REQUIRE(sim.requests_total() == 0);

  const std::vector<std::string> topics = {"still serving"};
  require_report(service.analyze(analyze_body(topics)), topics);
}

TEST_CASE("serve: a fault shows as failed in its own request's report only", "[serve]") {
  Simulator sim({"--latency-ms", "50"});
  Service service(sim, {"--concurrency", "4"});
  const std::vector<std::string> faulty = {"fine first", "[[fault:400_1301]] refused", "fine last"};
  const auto clean = numbered("clean neighbour", 4);
  HttpReply faulty_reply;
  HttpReply clean_reply;
  {
    std::jthread a([&] { faulty_reply = service.analyze(analyze_body(faulty, 2)); });
    std::jthread b([&] { clean_reply = service.analyze(analyze_body(clean, 2)); });
  }
  require_report(clean_reply, clean);
  REQUIRE(faulty_reply.status == 200);
  const rapidjson::Document doc = parse(faulty_reply);
  const auto& results = doc["results"].GetArray();
  REQUIRE(results.Size() == 3);
  CHECK(std::string(results[0]["status"].GetString()) == "succeeded");
  CHECK(std::string(results[1]["status"].GetString()) == "failed");
  CHECK(std::string(results[1]["error"]["code"].GetString()) == "1301");
  CHECK(std::string(results[2]["status"].GetString()) == "succeeded");
  REQUIRE(doc["summary"]["failed_tasks"].GetUint64() == 1);
}

TEST_CASE("serve: a client that hangs up has its unstarted topics dropped, never sent, and the service goes on",
          "[serve][hostile]") {
  Simulator sim;
  Service service(sim, {"--timeout", "1", "--max-retries", "0"});
  // One at a time: the first hangs until the attempt's timeout, the other nine wait their turn.
  std::vector<std::string> topics = {"held [[fault:hang]]"};
  for (const auto& t : numbered("never sent", 9)) topics.push_back(t);
  const std::string body = analyze_body(topics, 1);
  const std::string request = "POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  const int fd = connect_loopback(port_of(service.url()));
  REQUIRE(fd >= 0);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  REQUIRE(eventually([&] { return sim.requests_total() == 1; }));
  ::close(fd);
  // Its batch ends when the held topic does; nothing of it is left.
  REQUIRE(eventually([&] { return parse(http_request("GET", service.url() + "/healthz"))["requests"].GetUint64() == 0; }));
  CHECK(sim.requests_total() == 1);
  INFO(service.diagnostics());
  CHECK(service.diagnostics().find("the client went away; 9 of its topics not run") != std::string::npos);
  const std::vector<std::string> next = {"next client"};
  require_report(service.analyze(analyze_body(next)), next);
}

TEST_CASE("serve: a deeply nested or value-stuffed body gets a 400 naming the bound, and the service goes on",
          "[serve][hostile]") {
  Simulator sim;
  Service service(sim, {"--max-topics", "10"});
  require_rejected(service.analyze(std::string(1 << 20, '[')), 400, "nested deeper than 8 levels");
  std::string stuffed = "{\"topics\":[\"a\"],\"x\":[";
  for (int i = 0; i < 100000; ++i) stuffed += "0,";
  stuffed += "0]}";
  require_rejected(service.analyze(stuffed), 400, "more than 74 values");
  CHECK(sim.requests_total() == 0);
  const std::vector<std::string> topics = {"still serving"};
  require_report(service.analyze(analyze_body(topics)), topics);
}

TEST_CASE("serve: connections that trickle their headers never lock out /healthz", "[serve][hostile]") {
  Simulator sim;
  Service service(sim, {});
  const int port = port_of(service.url());
  std::vector<int> slow;  // more than the 256 connections and 64 per address the service keeps
  for (int i = 0; i < 300; ++i) {
    const int fd = connect_loopback(port);
    if (fd < 0) continue;
    const std::string start = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    ::send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    slow.push_back(fd);
  }
  REQUIRE(slow.size() > 256);
  for (int turn = 0; turn < 3; ++turn) {
    for (const int fd : slow) ::send(fd, "X-Drip: 1\r\n", 11, MSG_NOSIGNAL);  // closed ones fail: fine
    const HttpReply health = http_request("GET", service.url() + "/healthz");
    CHECK(health.status == 200);
  }
  for (const int fd : slow) ::close(fd);
  const std::vector<std::string> topics = {"after the trickle"};
  require_report(service.analyze(analyze_body(topics)), topics);
}

TEST_CASE("serve: topics waiting over all requests are capped, with 503 and Retry-After", "[serve][hostile]") {
  Simulator sim;
  Service service(sim, {"--max-queued-topics", "5", "--concurrency", "1", "--timeout", "1", "--max-retries", "0"});
  // A first client's three held topics: one runs, two wait.
  const std::string body = analyze_body({"held 1 [[fault:hang]]", "held 2 [[fault:hang]]", "held 3 [[fault:hang]]"});
  const int fd = connect_loopback(port_of(service.url()));
  REQUIRE(fd >= 0);
  const std::string request = "POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  REQUIRE(eventually([&] { return sim.requests_total() == 1; }));
  REQUIRE(parse(http_request("GET", service.url() + "/healthz"))["queued"].GetUint64() == 2);
  // Two waiting and four more would be six: refused whole, nothing queued.
  const HttpReply full = service.analyze(analyze_body(numbered("too many", 4)));
  require_rejected(full, 503, "--max-queued-topics 5");
  CHECK_THAT(full.headers, Catch::Contains("Retry-After: 5"));
  CHECK(parse(http_request("GET", service.url() + "/healthz"))["queued"].GetUint64() == 2);
  // Three fit.
  const std::vector<std::string> fits = numbered("fits", 3);
  require_report(service.analyze(analyze_body(fits)), fits);
  ::close(fd);
}

TEST_CASE("serve: with a token file /analyze needs the bearer token, /healthz does not", "[serve][hostile]") {
  Simulator sim;
  TempDir dir;
  const std::string token = "tok-CANARY-71c2e9";
  write_text(dir / "token", token + "\n");
  Service service(sim, {"--auth-token-file", (dir / "token").string()});
  const std::vector<std::string> topics = {"guarded"};
  const HttpReply none = service.analyze(analyze_body(topics));
  require_rejected(none, 401, "bearer token");
  CHECK_THAT(none.headers, Catch::Contains("WWW-Authenticate: Bearer"));
  require_rejected(http_request("POST", service.url() + "/analyze", analyze_body(topics),
                                {"Authorization: Bearer tok-CANARY-71c2e8"}),
                   401, "bearer token");
  require_rejected(http_request("POST", service.url() + "/analyze", analyze_body(topics),
                                {"Authorization: Bearer " + token + "x"}),
                   401, "bearer token");
  CHECK(sim.requests_total() == 0);
  require_report(http_request("POST", service.url() + "/analyze", analyze_body(topics),
                              {"Authorization: Bearer " + token}),
                 topics);
  CHECK(http_request("GET", service.url() + "/healthz").status == 200);
  CHECK(service.diagnostics().find(token) == std::string::npos);
}

TEST_CASE("serve: a POST without Content-Length gets 411 and its body is never read as a request",
          "[serve][hostile]") {
  Simulator sim;
  Service service(sim, {});
  const std::string answer = raw_exchange(
      port_of(service.url()), "POST /analyze HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 411 "));
  CHECK(answer.find("HTTP/1.1 200") == std::string::npos);  // the "body" was not served as a request
}

TEST_CASE("serve: TERM finishes the accepted requests, refuses new ones, and exits 0", "[serve]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  Simulator sim({"--latency-ms", "300"});
  Service service(sim, {"--mode", mode, "--concurrency", "2"});
  const auto first = numbered("drained first", 3);
  const auto second = numbered("drained second", 3);
  HttpReply first_reply;
  HttpReply second_reply;
  std::jthread a([&] { first_reply = service.analyze(analyze_body(first, 1)); });
  std::jthread b([&] { second_reply = service.analyze(analyze_body(second, 1)); });
  REQUIRE(eventually([&] { return sim.stats()["in_flight"].GetInt64() == 2; }));

  service.process().signal(SIGTERM);
  // A new request is refused: 503 while the accepted ones finish, or no connection once it is gone.
  REQUIRE(eventually([&] {
    try {
      return http_request("GET", service.url() + "/healthz").status == 503;
    } catch (const std::exception&) {
      return true;
    }
  }));
  try {
    require_rejected(service.analyze(analyze_body({"too late"})), 503, "shutting down");
  } catch (const std::runtime_error&) {
    // Connection refused: the service had already finished.
  }
  a.join();
  b.join();
  INFO(service.diagnostics());
  require_report(first_reply, first);
  require_report(second_reply, second);
  REQUIRE(service.process().exit_code() == 0);
  REQUIRE(sim.requests_total() == 6);  // nothing of the refused request
}

TEST_CASE("serve: a second TERM cancels what still runs, answers its requests, and exits 143", "[serve]") {
  Simulator sim({"--latency-ms", "2000"});
  Service service(sim, {"--concurrency", "2"});
  const auto topics = numbered("cut short", 4);
  HttpReply reply;
  std::jthread client([&] { reply = service.analyze(analyze_body(topics, 2)); });
  REQUIRE(eventually([&] { return sim.stats()["in_flight"].GetInt64() == 2; }));
  service.process().signal(SIGTERM);
  REQUIRE(eventually([&] { return http_request("GET", service.url() + "/healthz").status == 503; }));
  service.process().signal(SIGTERM);
  client.join();
  INFO(service.diagnostics());
  require_report(reply, topics, "cancelled");
  // The answer says how its batch ended, as a run of just its topics would.
  const rapidjson::Document doc = parse(reply);
  CHECK(doc["summary"]["interrupted"].GetBool());
  CHECK(doc["summary"]["interrupted_by_signal"].GetInt() == SIGTERM);
  CHECK(doc["summary"]["exit_status"].GetInt() == 128 + SIGTERM);
  REQUIRE(service.process().exit_code() == 143);
}

TEST_CASE("serve: usage errors exit 2 and name the flag", "[serve]") {
  TempDir dir;
  const auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {cbm::test::supervisor_path(), "serve"});
    SpawnOptions opts;
    opts.output_dir = dir.path();
    opts.cwd = dir.path();
    opts.env["BIGMODEL_API_KEY"] = kTestKey;
    Subprocess p(args, opts);
    const int code = p.exit_code();
    return std::make_pair(code, p.out() + p.err());
  };
  const auto help = run({"--help"});
  CHECK(help.first == 0);
  CHECK(help.second.find("POST /analyze") != std::string::npos);
  CHECK(help.second.find("--max-topics") != std::string::npos);
  CHECK(help.second.find("--topics-file") == std::string::npos);

  const auto topics = run({"--topics", "x"});
  CHECK(topics.first == 2);
  CHECK(topics.second.find("--topics") != std::string::npos);
  const auto listen = run({"--listen", "nowhere"});
  CHECK(listen.first == 2);
  CHECK(listen.second.find("--listen: 'nowhere'") != std::string::npos);

  Simulator sim;  // a port in use
  const auto busy = run({"--listen", "127.0.0.1:" + std::to_string(sim.port())});
  CHECK(busy.first == 2);
  CHECK(busy.second.find("cannot listen") != std::string::npos);
}
