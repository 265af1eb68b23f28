// Fleet-wide limits (docs/fleet.md, "Fleet-wide limits") against a real redis-server started by each
// test: the lease semaphore's rules (FleetSemaphore, its Lua scripts), and then whole nodes.
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fleet_semaphore.hpp"
#include "leader_lease.hpp"
#include "redis_client.hpp"
#include "redis_server.hpp"
#include "simulator.hpp"

using namespace std::chrono_literals;
using cbm::fleet::FleetLimitSettings;
using cbm::fleet::FleetSemaphore;
using Clock = std::chrono::steady_clock;

namespace {

cbm::redis::RedisUrl url_of(const cbm::test::RedisServer& server) {
  return cbm::redis::parse_redis_url(server.url(), nullptr);
}

std::unique_ptr<FleetSemaphore> semaphore(const cbm::test::RedisServer& server, const std::string& holder, int limit,
                                          std::chrono::milliseconds lease = 10s) {
  return std::make_unique<FleetSemaphore>(url_of(server), cbm::fleet::api_key_scope(cbm::test::kTestKey), holder,
                                          FleetLimitSettings{limit, lease});
}

std::unique_ptr<cbm::redis::Client> client_of(const cbm::test::RedisServer& server) {
  auto c = std::make_unique<cbm::redis::Client>(url_of(server), cbm::redis::Client::Options{});
  c->connect_within(5s);
  return c;
}

const cbm::AttemptOutcome kOk{};

cbm::AttemptOutcome refused_1302() {
  cbm::AttemptOutcome o;
  o.error.emplace();
  o.error->kind = cbm::ErrorKind::api;
  o.error->code = "1302";
  return o;
}

}  // namespace

TEST_CASE("fleet limit: the key is named by a digest of the API key, never the key", "[fleet]") {
  const std::string scope = cbm::fleet::api_key_scope(cbm::test::kTestKey);
  CHECK(scope.rfind("cbm:limits:", 0) == 0);
  CHECK(scope.size() == std::string("cbm:limits:{}:").size() + 32);
  CHECK(scope.find("CANARY") == std::string::npos);
  CHECK(scope == cbm::fleet::api_key_scope(cbm::test::kTestKey));  // every node of the account agrees
  CHECK(scope != cbm::fleet::api_key_scope("sk-another-account"));
}

TEST_CASE("fleet limit: leases are granted up to the limit across holders, a release frees one", "[fleet]") {
  cbm::test::RedisServer server;
  auto a = semaphore(server, "node-a", 3);
  auto b = semaphore(server, "node-b", 3);
  const auto now = Clock::now();
  const auto a1 = a->try_acquire(now, {});
  const auto a2 = a->try_acquire(now, {});
  const auto b1 = b->try_acquire(now, {});
  REQUIRE(a1);
  REQUIRE(a2);
  REQUIRE(b1);
  CHECK_FALSE(b->try_acquire(now, {}));  // the third was the last
  CHECK_FALSE(a->try_acquire(now, {}));
  CHECK(a->in_use() == 3);
  a->release(*a1, kOk, now);
  const auto b2 = b->try_acquire(now, {});
  CHECK(b2);
  CHECK_FALSE(a->try_acquire(now, {}));
  CHECK(b->held() == 2);
  CHECK(a->held() == 1);
}

TEST_CASE("fleet limit: a release is idempotent and gives back only its own lease", "[fleet]") {
  cbm::test::RedisServer server;
  auto a = semaphore(server, "node-a", 2);
  auto b = semaphore(server, "node-b", 2);
  const auto now = Clock::now();
  const auto a1 = a->try_acquire(now, {});
  const auto b1 = b->try_acquire(now, {});
  REQUIRE(a1);
  REQUIRE(b1);
  a->release(*a1, kOk, now);
  a->release(*a1, kOk, now);  // again: nothing more is freed
  CHECK(a->in_use() == 1);
  // Lease numbers are per holder: a's lease 1 is not b's lease 1.
  CHECK(*a1 == *b1);
  CHECK(b->held() == 1);
}

TEST_CASE("fleet limit: a lease that is not renewed expires, so a dead holder leaks nothing", "[fleet]") {
  cbm::test::RedisServer server;
  auto dead = semaphore(server, "dead-node", 2, 1s);
  auto live = semaphore(server, "live-node", 2, 1s);
  const auto now = Clock::now();
  REQUIRE(dead->try_acquire(now, {}));
  REQUIRE(dead->try_acquire(now, {}));
  CHECK_FALSE(live->try_acquire(now, {}));
  // The dead node never renews (nor releases): its leases run out on Redis' clock.
  CHECK(cbm::test::eventually([&] { return live->try_acquire(Clock::now(), {}).has_value(); }, 10s));
  CHECK(cbm::test::eventually([&] { return live->try_acquire(Clock::now(), {}).has_value(); }, 10s));
  CHECK(live->in_use() == 2);
  CHECK(live->held() == 2);
}

TEST_CASE("fleet limit: renewed leases outlive their lease time, the expiry is on Redis' clock", "[fleet]") {
  cbm::test::RedisServer server;
  auto holder = semaphore(server, "renewing-node", 1, 1s);
  auto other = semaphore(server, "waiting-node", 1, 1s);
  auto redis_ptr = client_of(server);
  auto& redis = *redis_ptr;
  const auto start = Clock::now();
  REQUIRE(holder->try_acquire(start, {}));
  const auto score = [&] {
    return std::stoll(redis.command_ok({"ZSCORE", holder->leases_key(), "renewing-node#1"}).as_string());
  };
  const long long first = score();
  const long long server_now = std::stoll(redis.command_ok({"TIME"}).at(0).as_string()) * 1000;
  CHECK(first > server_now);
  CHECK(first <= server_now + 2000);
  // Renewed when maintain() asks to be called again, for three lease times: the other holder, asking
  // between the renewals, never gets in.
  auto next = holder->maintain(start);
  CHECK(next > start);
  CHECK(next <= start + 1s);
  while (Clock::now() < start + 3s) {
    std::this_thread::sleep_until(std::min(next, start + 3s));
    next = holder->maintain(Clock::now());
    REQUIRE_FALSE(other->try_acquire(Clock::now(), {}));
  }
  CHECK(score() > first);
  CHECK(holder->lost() == 0);
  CHECK(holder->held() == 1);
}

TEST_CASE("fleet limit: a lease lost while Redis was away is taken again when there is room", "[fleet]") {
  cbm::test::RedisServer server;
  auto holder = semaphore(server, "slow-node", 1, 1s);
  auto redis_ptr = client_of(server);
  auto& redis = *redis_ptr;
  REQUIRE(holder->try_acquire(Clock::now(), {}));
  // As if the lease had expired before the renewal came: the renewal takes it back (room left).
  redis.command_ok({"ZREM", holder->leases_key(), "slow-node#1"});
  holder->maintain(Clock::now() + 1h);
  CHECK(holder->lost() == 0);
  CHECK(holder->in_use() == 1);
  // No room left: the lease is lost, counted, and forgotten (its release gives back nothing).
  auto taker = semaphore(server, "taker", 1, 10s);
  redis.command_ok({"ZREM", holder->leases_key(), "slow-node#1"});
  REQUIRE(taker->try_acquire(Clock::now(), {}));
  holder->maintain(Clock::now() + 2h);
  CHECK(holder->lost() == 1);
  CHECK(holder->held() == 0);
  holder->release(1, kOk, Clock::now());
  CHECK(taker->in_use() == 1);
}

TEST_CASE("fleet limit: Redis out of reach refuses admission and asks again later", "[fleet]") {
  cbm::test::RedisServer server;
  auto a = semaphore(server, "node-a", 4);
  REQUIRE(a->try_acquire(Clock::now(), {}));
  server.kill();
  const auto now = Clock::now();
  CHECK_FALSE(a->try_acquire(now, {}));
  CHECK(a->retry_at(now) >= now + FleetSemaphore::kUnavailableRetry);
  CHECK_FALSE(a->in_use());
}

TEST_CASE("fleet limit: a 1302 on one node lowers the limit every node acquires against, successes raise it",
          "[fleet]") {
  cbm::test::RedisServer server;
  auto a = semaphore(server, "node-a", 8);
  auto b = semaphore(server, "node-b", 8);
  const auto now = Clock::now();
  std::vector<cbm::SharedAdmission::LeaseId> leases;
  for (int i = 0; i < 6; ++i) leases.push_back(*a->try_acquire(now, {}));
  CHECK(a->shared_limit() == 8);
  // Refused with 5 others in flight: the limit drops to 5, and (the first cut) to 0.7 of it.
  a->release(leases.back(), refused_1302(), now);
  leases.pop_back();
  CHECK(b->shared_limit() == 3);
  CHECK_FALSE(b->try_acquire(now, {}));  // 5 in flight, the fleet's limit is 3
  // Successes while the limit binds add 1/limit each, as a node's AdaptiveLimit does.
  for (const auto lease : leases) a->release(lease, kOk, now);
  const auto raised = b->shared_limit();
  REQUIRE(raised);
  CHECK(*raised > 3);
  CHECK(*raised < 8);
  CHECK(b->try_acquire(now, {}));
}

TEST_CASE("fleet limit: bad settings are refused naming the field, the CLI names the flag and exits 2",
          "[fleet]") {
  CHECK_THROWS_WITH(cbm::fleet::validate(FleetLimitSettings{-1, 10s}), Catch::Contains("fleet_concurrency"));
  CHECK_THROWS_WITH(cbm::fleet::validate(FleetLimitSettings{4, 10ms}), Catch::Contains("fleet_lease"));
  CHECK_NOTHROW(cbm::fleet::validate(FleetLimitSettings{0, 10s}));

  cbm::test::TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--fleet-concurrency", "-3"}, "--fleet-concurrency must be 0 (no fleet-wide limit) or more, not -3"},
      {{"--fleet-lease", "0.5"}, "--fleet-lease must be between 1 and 3600 seconds, not 0.5"},
  };
  for (const auto& [flags, message] : bad) {
    std::vector<std::string> argv = {cbm::test::supervisor_path(), "work", "--redis", "redis://127.0.0.1:1/0",
                                     "--job", "j"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    cbm::test::Subprocess p(argv, cbm::test::supervisor_spawn_options(dir.path()));
    CHECK(p.exit_code() == 2);
    CHECK_THAT(p.err(), Catch::Contains(message));
  }
}

TEST_CASE("leader lease: one leader at a time, only the holder renews or releases it", "[fleet]") {
  cbm::test::RedisServer server;
  auto c1_ptr = client_of(server);
  auto c2_ptr = client_of(server);
  auto& c1 = *c1_ptr;
  auto& c2 = *c2_ptr;
  cbm::fleet::LeaderLease leader(c1, "cbm:{job}:leader", "submit-1", 10s);
  cbm::fleet::LeaderLease standby(c2, "cbm:{job}:leader", "submit-2", 10s);
  CHECK(leader.take());
  CHECK(leader.take());  // taking it again keeps it
  CHECK_FALSE(standby.take());
  CHECK_FALSE(standby.renew());  // not the holder: the expiry does not move
  standby.release();             // not the holder: nothing happens
  CHECK(standby.holder_now() == "submit-1");
  CHECK(leader.renew());
  // A handover (SIGTERM): the standby takes it at once.
  leader.release();
  CHECK_FALSE(leader.held());
  CHECK(standby.take());
  CHECK_FALSE(leader.renew());  // the old leader finds out it no longer leads
  CHECK(standby.holder_now() == "submit-2");
}

TEST_CASE("leader lease: a leader that stops renewing is replaced within one lease time", "[fleet]") {
  cbm::test::RedisServer server;
  auto c1_ptr = client_of(server);
  auto c2_ptr = client_of(server);
  auto& c1 = *c1_ptr;
  auto& c2 = *c2_ptr;
  cbm::fleet::LeaderLease dead(c1, "cbm:{job}:leader", "submit-1", 1s);
  cbm::fleet::LeaderLease standby(c2, "cbm:{job}:leader", "submit-2", 1s);
  REQUIRE(dead.take());
  CHECK_FALSE(standby.take());
  const long long pttl = c2.command_ok({"PTTL", "cbm:{job}:leader"}).as_integer();
  CHECK(pttl > 0);
  CHECK(pttl <= 1000);  // the lease runs out on Redis' clock within one lease time
  CHECK(cbm::test::eventually([&] { return standby.take(); }, 10s));
  CHECK_FALSE(dead.renew());
}

// ---- Whole nodes: `concurrent_bigmodel work` against the simulator, sharing one limit through Redis.

namespace {

// A job in a fresh Redis, the simulator, and the nodes a test starts.
struct FleetBench {
  explicit FleetBench(std::vector<std::string> simulator_args) : sim(std::move(simulator_args)) {}

  // Enqueues `n` topics as the job (the same run settings as the nodes: no web search).
  void submit(int n) {
    std::string topics;
    for (int i = 0; i < n; ++i) topics += "fleet limit topic " + std::to_string(i) + "\n";
    cbm::test::write_text(dir / "topics.txt", topics);
    cbm::test::Subprocess s({cbm::test::supervisor_path(), "submit", "--redis", redis.url(), "--job", job,
                             "--topics-file", (dir / "topics.txt").string(), "--no-search"},
                            spawn_options("submit"));
    REQUIRE(s.exit_code() == 0);
    total = n;
  }

  cbm::test::Subprocess& start_node(const std::string& mode, int concurrency, int fleet_concurrency,
                                    std::vector<std::string> extra = {}) {
    const std::string name = "node" + std::to_string(nodes.size());
    std::vector<std::string> argv = {cbm::test::supervisor_path(), "work", "--redis", redis.url(), "--job", job,
                                     "--mode", mode, "--concurrency", std::to_string(concurrency),
                                     "--fleet-concurrency", std::to_string(fleet_concurrency), "--no-search",
                                     "--delay", "0", "--base-url", sim.base_url(), "--node-name", name,
                                     "--log-file", (dir / (name + ".log")).string(), "--quiet"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    nodes.push_back(std::make_unique<cbm::test::Subprocess>(argv, spawn_options(name)));
    return *nodes.back();
  }

  cbm::test::SpawnOptions spawn_options(const std::string& name) {
    const auto out = dir / name;
    std::filesystem::create_directories(out);
    return cbm::test::supervisor_spawn_options(out);
  }

  long long done() { return client().command_ok({"HLEN", "cbm:{" + job + "}:done"}).as_integer(); }
  // The fleet's leases now, and those of the process `pid`.
  std::vector<std::string> leases() {
    std::vector<std::string> out;
    const std::string key = cbm::fleet::api_key_scope(cbm::test::kTestKey) + "leases";
    const cbm::redis::Reply members = client().command_ok({"ZRANGE", key, "0", "-1"});
    for (const auto& m : members.as_array()) out.push_back(m.as_string());
    return out;
  }
  static std::size_t of_pid(const std::vector<std::string>& leases, pid_t pid) {
    const std::string mark = ":" + std::to_string(pid) + ":";
    std::size_t n = 0;
    for (const auto& l : leases) n += l.find(mark) != std::string::npos ? 1 : 0;
    return n;
  }
  cbm::redis::Client& client() {
    if (!redis_client) {
      redis_client = std::make_unique<cbm::redis::Client>(url_of(redis), cbm::redis::Client::Options{});
      redis_client->connect_within(5s);
    }
    return *redis_client;
  }
  // SIGTERM to every node still running: each drains and exits 143.
  void stop_nodes() {
    for (auto& n : nodes) {
      if (!n->wait_for(0ms)) n->signal(SIGTERM);
    }
    for (auto& n : nodes) CHECK((n->exit_code(60s) == 143 || n->exit_code(60s) == 128 + SIGKILL));
  }

  cbm::test::TempDir dir;
  cbm::test::RedisServer redis;
  cbm::test::Simulator sim;
  std::unique_ptr<cbm::redis::Client> redis_client;
  std::vector<std::unique_ptr<cbm::test::Subprocess>> nodes;
  std::string job = "limits";
  int total = 0;
};

#ifdef CBM_TEST_SANITIZED
constexpr int kTopics = 64;
#else
constexpr int kTopics = 160;
#endif

}  // namespace

TEST_CASE("fleet limit: 3 nodes at concurrency 8 under --fleet-concurrency 8 never put more than 8 in flight, "
          "and keep 8 in flight",
          "[fleet][integration]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  FleetBench b({"--latency-ms", "100"});
  b.submit(kTopics);
  for (int i = 0; i < 3; ++i) b.start_node(mode, 8, 8);
  // The platform's view, sampled while the job runs: requests in flight at the simulator.
  // Counted from the first sample at the limit (the nodes' start-up is not the limit's doing) until
  // fewer than 8 tasks are left (the last wave cannot fill it).
  int busy = 0;      // samples with anything in flight
  int at_limit = 0;  // ... with 7 or 8
  bool reached = false;
  const bool completed = cbm::test::eventually(
      [&] {
        const long long in_flight = b.sim.stats()["in_flight"].GetInt64();
        const long long done = b.done();
        reached = reached || in_flight >= 7;
        if (reached && b.total - done >= 8) {
          if (in_flight > 0) ++busy;
          if (in_flight >= 7) ++at_limit;
        }
        return done == b.total;
      },
      120s);
  REQUIRE(completed);
  b.stop_nodes();
  const auto stats = b.sim.stats();
  CHECK(stats["peak_in_flight"].GetInt64() <= 8);
  CHECK(stats["by_status"]["200"].GetInt64() == kTopics);
  INFO("samples at 7-8 in flight: " << at_limit << " of " << busy << " with any");
  CHECK(reached);
#ifndef CBM_TEST_SANITIZED
  // How well the fleet uses its allowance is a matter of speed: measured where the code runs at its own
  // (a sanitizer's slowdown of the nodes is not the limit's behaviour).
  CHECK(busy > 10);
  CHECK(at_limit * 10 >= busy * 6);
#endif
  CHECK(b.leases().empty());         // every lease given back
}

TEST_CASE("fleet limit: a node killed while holding leases leaks no capacity, the others go on",
          "[fleet][integration]") {
  const std::string mode = GENERATE(from_range(cbm::test::all_modes()));
  INFO("mode " << mode);
  // Slow answers: the killed node surely holds leases, and the survivor wants the whole limit.
  FleetBench b({"--latency-ms", "400"});
  b.submit(kTopics / 4);
  const std::vector<std::string> fast_reclaim = {"--fleet-lease", "1", "--timeout", "2", "--max-retries", "1",
                                                 "--lease-grace", "1"};
  cbm::test::Subprocess& doomed = b.start_node(mode, 4, 4, fast_reclaim);
  REQUIRE(cbm::test::eventually([&] { return FleetBench::of_pid(b.leases(), doomed.pid()) >= 2; }, 30s));
  doomed.signal(SIGKILL);
  REQUIRE(doomed.exit_code(10s) == 128 + SIGKILL);
  cbm::test::Subprocess& survivor = b.start_node(mode, 4, 4, fast_reclaim);
  // The dead node's leases expire on Redis' clock (one --fleet-lease), and the survivor then holds the
  // whole limit: the capacity came back.
  CHECK(cbm::test::eventually([&] { return FleetBench::of_pid(b.leases(), doomed.pid()) == 0; }, 10s));
  CHECK(cbm::test::eventually([&] { return FleetBench::of_pid(b.leases(), survivor.pid()) == 4; }, 30s));
  REQUIRE(cbm::test::eventually([&] { return b.done() == b.total; }, 120s));
  b.stop_nodes();
  CHECK(b.sim.stats()["peak_in_flight"].GetInt64() <= 4);
}
