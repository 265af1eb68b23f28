// Fleet-wide rate caps (docs/fleet.md, "Fleet-wide limits": --fleet-rpm, --fleet-tpm) against a real
// redis-server started by each test: the scripts' rules (FleetRate), and then whole nodes. Every test
// runs well inside one 60 s window, so "at most R in any window" is "at most R over the whole test".
#include "fleet_rate.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fleet_semaphore.hpp"
#include "redis_client.hpp"
#include "redis_server.hpp"
#include "simulator.hpp"

using namespace std::chrono_literals;
using cbm::fleet::FleetRate;
using cbm::fleet::FleetRateSettings;
using Clock = std::chrono::steady_clock;
using Reservation = cbm::RateLimit::Reservation;

namespace {

cbm::redis::RedisUrl url_of(const cbm::test::RedisServer& server) {
  return cbm::redis::parse_redis_url(server.url(), nullptr);
}

std::unique_ptr<FleetRate> rate(const cbm::test::RedisServer& server, const std::string& holder,
                                FleetRateSettings settings) {
  return std::make_unique<FleetRate>(url_of(server), cbm::fleet::api_key_scope(cbm::test::kTestKey), holder,
                                     settings);
}

std::unique_ptr<cbm::redis::Client> client_of(const cbm::test::RedisServer& server) {
  auto c = std::make_unique<cbm::redis::Client>(url_of(server), cbm::redis::Client::Options{});
  c->connect_within(5s);
  return c;
}

// An attempt that sent `requests` requests and used `tokens` tokens in all.
cbm::AttemptOutcome spent(int requests, std::int64_t tokens) {
  cbm::AttemptOutcome o;
  for (int i = 0; i < requests; ++i) {
    o.steps.emplace_back();
    o.steps.back().usage.total_tokens = i == 0 ? tokens : 0;
  }
  return o;
}

double debt_of(cbm::redis::Client& redis, const FleetRate& r) {
  const cbm::redis::Reply d = redis.command_ok({"HGET", r.tokens_key(), "debt"});
  return d.is_nil() ? 0.0 : std::stod(d.as_string());
}

const Reservation kOneRequest{1.0, 1000.0};

}  // namespace

TEST_CASE(
    "fleet rate: two holders share one window of --fleet-rpm starts, a refusal waits for the oldest "
    "to leave it",
    "[fleet]") {
  cbm::test::RedisServer server;
  auto a = rate(server, "node-a", {5, 0});
  auto b = rate(server, "node-b", {5, 0});
  auto redis = client_of(server);
  const auto now = Clock::now();
  int granted = 0;
  for (int i = 0; i < 8; ++i) {
    if (a->try_acquire(now, kOneRequest)) ++granted;
    if (b->try_acquire(now, kOneRequest)) ++granted;
  }
  CHECK(granted == 5);
  CHECK(redis->command_ok({"ZCARD", a->requests_key()}).as_integer() == 5);
  // The first start leaves the window 60 s after it was made: neither holder asks again before then
  // (less the time this test took since; Redis' clock, not ours, started the window).
  for (const auto* r : {a.get(), b.get()}) {
    CHECK(r->retry_at(now) > now + FleetRate::kWindow - 10s);
    CHECK(r->retry_at(now) <= now + FleetRate::kWindow + FleetRate::kJitter);
  }
  // The window's set expires with its last start: an abandoned account leaves nothing behind.
  const long long pttl = redis->command_ok({"PTTL", a->requests_key()}).as_integer();
  CHECK(pttl > 0);
  CHECK(pttl <= FleetRate::kWindow.count());
}

TEST_CASE("fleet rate: requests reserved but not sent leave the window, a cancelled start gives all back",
          "[fleet]") {
  cbm::test::RedisServer server;
  auto a = rate(server, "node-a", {4, 0});
  auto redis = client_of(server);
  const auto in_window = [&] { return redis->command_ok({"ZCARD", a->requests_key()}).as_integer(); };
  const auto now = Clock::now();
  // With web search an attempt reserves two requests.
  const auto first = a->try_acquire(now, {2.0, 0.0});
  const auto second = a->try_acquire(now, {2.0, 0.0});
  REQUIRE(first);
  REQUIRE(second);
  CHECK(in_window() == 4);
  CHECK_FALSE(a->try_acquire(now, {2.0, 0.0}));
  // The first attempt failed after its search step: its second request was never sent.
  a->release(*first, spent(1, 0), now);
  CHECK(in_window() == 3);
  a->release(*first, spent(1, 0), now);  // idempotent
  CHECK(in_window() == 3);
  // An attempt that never started (another fleet limit refused it) takes nothing from the window.
  a->cancel(*second, now);
  CHECK(in_window() == 1);
  CHECK(a->try_acquire(now, {2.0, 0.0}));
  CHECK(in_window() == 3);
}

TEST_CASE("fleet rate: an attempt whose spend is unknown (crash, timeout) keeps its reservation", "[fleet]") {
  cbm::test::RedisServer server;
  auto a = rate(server, "node-a", {3, 60});
  auto redis = client_of(server);
  const auto lease = a->try_acquire(Clock::now(), {2.0, 500.0});
  REQUIRE(lease);
  a->release(*lease, cbm::AttemptOutcome{}, Clock::now());  // no steps: what it spent is unknown
  CHECK(redis->command_ok({"ZCARD", a->requests_key()}).as_integer() == 2);
  CHECK(debt_of(*redis, *a) > 440.0);  // 500 reserved, repaid at 1 token a second
}

TEST_CASE("fleet rate: --fleet-tpm reserves the estimate at the start and charges the tokens used at the end",
          "[fleet]") {
  cbm::test::RedisServer server;
  // 60 tokens a minute: the debt is repaid at 1 token a second, so a slow test machine moves the numbers
  // below by a few tokens at most.
  auto a = rate(server, "node-a", {0, 60});
  auto b = rate(server, "node-b", {0, 60});
  auto redis = client_of(server);
  const auto now = Clock::now();
  const auto lease = a->try_acquire(now, {1.0, 1000.0});
  REQUIRE(lease);
  CHECK(debt_of(*redis, *a) == Approx(1000.0));
  // While anything is owed no attempt starts anywhere; the refusal waits for the debt to be repaid.
  CHECK_FALSE(b->try_acquire(now, kOneRequest));
  CHECK(b->retry_at(now) > now + 900s);
  // It used 3000 tokens, not the 1000 reserved: the debt grows by the difference.
  a->release(*lease, spent(1, 3000), now);
  const double debt = debt_of(*redis, *a);
  CHECK(debt > 2940.0);
  CHECK(debt <= 3000.0);
  // The key lives until the debt is repaid (and a window more), then goes.
  const long long pttl = redis->command_ok({"PTTL", a->tokens_key()}).as_integer();
  CHECK(pttl > 2940 * 1000);
  CHECK(pttl <= (3000 + 60) * 1000);
}

TEST_CASE("fleet rate: a refund never turns into a burst, the debt stops at zero", "[fleet]") {
  cbm::test::RedisServer server;
  auto a = rate(server, "node-a", {0, 60});
  auto redis = client_of(server);
  const auto lease = a->try_acquire(Clock::now(), {1.0, 1000.0});
  REQUIRE(lease);
  a->release(*lease, spent(1, 10), Clock::now());  // 990 fewer than reserved
  CHECK(debt_of(*redis, *a) <= 10.0);
  CHECK(debt_of(*redis, *a) >= 0.0);
}

TEST_CASE(
    "fleet rate: Redis out of reach refuses every start, and a use it missed is charged when it is back",
    "[fleet]") {
  cbm::test::RedisServer server;
  auto a = rate(server, "node-a", {10, 60});
  const auto lease = a->try_acquire(Clock::now(), {1.0, 100.0});
  REQUIRE(lease);
  server.kill();
  const auto now = Clock::now();
  CHECK_FALSE(a->try_acquire(now, kOneRequest));
  CHECK(a->retry_at(now) >= now + FleetRate::kUnavailableRetry);
  // The attempt ends while Redis is away: what it used waits, and is not forgotten.
  a->release(*lease, spent(1, 5000), now);
  CHECK(a->unsettled() == 1);
  server.start();
  CHECK(cbm::test::eventually(
      [&] {
        a->maintain(Clock::now());
        return a->unsettled() == 0;
      },
      20s));
  auto redis = client_of(server);
  CHECK(debt_of(*redis, *a) > 4900.0);
  CHECK_FALSE(a->try_acquire(Clock::now(), kOneRequest));  // still owed: no start
}

TEST_CASE("fleet rate: bad settings are refused naming the field, the CLI names the flag and exits 2",
          "[fleet]") {
  CHECK_THROWS_WITH(cbm::fleet::validate(FleetRateSettings{-1, 0}), Catch::Contains("fleet_rpm"));
  CHECK_THROWS_WITH(cbm::fleet::validate(FleetRateSettings{0, -5}), Catch::Contains("fleet_tpm"));
  CHECK_NOTHROW(cbm::fleet::validate(FleetRateSettings{0, 0}));

  cbm::test::TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--fleet-rpm", "-3"}, "--fleet-rpm must be 0 (no fleet-wide cap) or more, not -3"},
      {{"--fleet-tpm", "-7"}, "--fleet-tpm must be 0 (no fleet-wide cap) or more, not -7"},
      {{"--fleet-rpm", "1"}, "--fleet-rpm must be 2 or more with web search"},
  };
  for (const auto& [flags, message] : bad) {
    std::vector<std::string> argv = {cbm::test::supervisor_path(), "work",  "--redis",
                                     "redis://127.0.0.1:1/0",      "--job", "j"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    cbm::test::Subprocess p(argv, cbm::test::supervisor_spawn_options(dir.path()));
    CHECK(p.exit_code() == 2);
    CHECK_THAT(p.err(), Catch::Contains(message));
  }
}

// ---- Whole nodes: `concurrent_bigmodel work` against the simulator, sharing the caps through Redis.

namespace {

struct RateBench {
  // Enqueues `n` topics as the job (no web search: one request an attempt).
  void submit(int n) {
    std::string topics;
    for (int i = 0; i < n; ++i) topics += "fleet rate topic " + std::to_string(i) + "\n";
    cbm::test::write_text(dir.path() / "topics.txt", topics);
    cbm::test::Subprocess s({cbm::test::supervisor_path(), "submit", "--redis", redis.url(), "--job", job,
                             "--topics-file", (dir.path() / "topics.txt").string(), "--no-search"},
                            spawn_options("submit"));
    REQUIRE(s.exit_code() == 0);
  }

  void start_node(const std::string& mode, int concurrency, std::vector<std::string> limits) {
    const std::string name = "node" + std::to_string(nodes.size());
    std::vector<std::string> argv = {cbm::test::supervisor_path(),
                                     "work",
                                     "--redis",
                                     redis.url(),
                                     "--job",
                                     job,
                                     "--mode",
                                     mode,
                                     "--concurrency",
                                     std::to_string(concurrency),
                                     "--no-search",
                                     "--delay",
                                     "0",
                                     "--base-url",
                                     sim.base_url(),
                                     "--node-name",
                                     name,
                                     "--log-file",
                                     (dir.path() / (name + ".log")).string(),
                                     "--quiet"};
    argv.insert(argv.end(), limits.begin(), limits.end());
    nodes.push_back(std::make_unique<cbm::test::Subprocess>(argv, spawn_options(name)));
  }

  cbm::test::SpawnOptions spawn_options(const std::string& name) {
    const auto out = dir.path() / name;
    std::filesystem::create_directories(out);
    return cbm::test::supervisor_spawn_options(out);
  }

  long long done() { return client().command_ok({"HLEN", "cbm:{" + job + "}:done"}).as_integer(); }
  long long requests() const { return sim.stats()["requests_total"].GetInt64(); }
  cbm::redis::Client& client() {
    if (!redis_client) redis_client = client_of(redis);
    return *redis_client;
  }
  // SIGTERM to every node: each lets its running attempts finish, and exits 143.
  void stop_nodes() {
    for (auto& n : nodes) n->signal(SIGTERM);
    for (auto& n : nodes) CHECK(n->exit_code(60s) == 143);
  }

  cbm::test::TempDir dir;
  cbm::test::RedisServer redis;
  cbm::test::Simulator sim{{"--latency-ms", "50"}};
  std::unique_ptr<cbm::redis::Client> redis_client;
  std::vector<std::unique_ptr<cbm::test::Subprocess>> nodes;
  std::string job = "rates";
};

}  // namespace

TEST_CASE(
    "fleet rate: 2 nodes at concurrency 4 under --fleet-rpm 6 send the platform 6 requests in the "
    "first minute, not more",
    "[fleet][integration]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  RateBench b;
  b.submit(30);
  for (int i = 0; i < 2; ++i) b.start_node(mode, 4, {"--fleet-rpm", "6"});
  // Unlimited, the nodes would finish all 30 in well under a second; a cap that leaked would carry the
  // count past 6 before this sees it at 6.
  REQUIRE(cbm::test::eventually([&] { return b.done() >= 6; }, 60s));
  b.stop_nodes();
  CHECK(b.done() == 6);
  CHECK(b.requests() == 6);
}

TEST_CASE(
    "fleet rate: with --fleet-concurrency too, both limits hold and a refused start leaves nothing taken",
    "[fleet][integration]") {
  RateBench b;
  b.submit(30);
  for (int i = 0; i < 2; ++i) b.start_node("asyncio", 4, {"--fleet-rpm", "5", "--fleet-concurrency", "2"});
  REQUIRE(cbm::test::eventually([&] { return b.done() >= 5; }, 60s));
  b.stop_nodes();
  CHECK(b.done() == 5);
  CHECK(b.requests() == 5);
  CHECK(b.sim.stats()["peak_in_flight"].GetInt64() <= 2);
  // Starts the rate cap refused after the semaphore admitted them gave their lease back, and left no
  // request in the window.
  const std::string scope = cbm::fleet::api_key_scope(cbm::test::kTestKey);
  CHECK(b.client().command_ok({"ZCARD", scope + "leases"}).as_integer() == 0);
  CHECK(b.client().command_ok({"ZCARD", scope + "rpm"}).as_integer() == 5);
}

TEST_CASE("fleet rate: under --fleet-tpm nodes start one attempt, then wait for the tokens it really used",
          "[fleet][integration]") {
  RateBench b;
  b.submit(10);
  // 600 tokens a minute, 1000 reserved by the first attempt (the estimate before any usage is known):
  // nothing else starts for over a minute.
  for (int i = 0; i < 2; ++i) b.start_node("asyncio", 4, {"--fleet-tpm", "600"});
  REQUIRE(cbm::test::eventually([&] { return b.done() >= 1; }, 60s));
  b.stop_nodes();
  CHECK(b.done() == 1);
  CHECK(b.requests() == 1);
  // The debt now is the tokens the attempt used (as its answer's usage said), not the 1000 reserved.
  const std::string tokens = cbm::fleet::api_key_scope(cbm::test::kTestKey) + "tpm";
  const double debt = std::stod(b.client().command_ok({"HGET", tokens, "debt"}).as_string());
  CHECK(debt > 0.0);
  CHECK(debt < 1000.0 - 1.0);
}
