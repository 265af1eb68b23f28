// Fleets on Redis Streams (docs/fleet.md): a real redis-server (temp dir, a free port, AOF on), the
// simulator, and node processes of the CLI on this machine. Each guarantee runs in every mode.
#include <rapidjson/document.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "redis_client.hpp"
#include "redis_server.hpp"
#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;
namespace fs = std::filesystem;

namespace {

#ifdef CBM_TEST_SANITIZED
constexpr int kManyTopics = 600;
#else
constexpr int kManyTopics = 3000;
#endif

// A client of the test's Redis, connected.
std::unique_ptr<cbm::redis::Client> client_of(const RedisServer& redis) {
  auto c = std::make_unique<cbm::redis::Client>(cbm::redis::parse_redis_url(redis.url(), nullptr),
                                                cbm::redis::Client::Options{});
  c->connect_within(10s);
  return c;
}

std::string keys_of(const std::string& job, const std::string& key) { return "cbm:{" + job + "}:" + key; }

// One fleet: Redis, the simulator, a directory for files, and the CLI's processes.
struct Fleet {
  explicit Fleet(std::vector<std::string> sim_args = {"--latency-ms", "20"}) : sim(std::move(sim_args)) {}

  RedisServer redis;
  Simulator sim;
  TempDir dir;
  std::string job = "job1";

  std::vector<std::string> base(const std::string& command) const {
    return {supervisor_path(), command, "--redis", redis.url(), "--job", job};
  }
  std::unique_ptr<Subprocess> spawn(std::vector<std::string> argv, const std::string& name) const {
    auto opts = supervisor_spawn_options(dir.path());
    opts.output_dir = dir.path() / name;
    fs::create_directories(opts.output_dir);
    return std::make_unique<Subprocess>(argv, opts);
  }
  void write_topics(const std::vector<std::string>& topics) const {
    std::string text;
    for (const auto& t : topics) text += t + "\n";
    write_text(dir / "topics.txt", text);
  }
  int submit(const std::vector<std::string>& extra = {}) const {
    auto argv = base("submit");
    argv.insert(argv.end(), {"--topics-file", (dir / "topics.txt").string(), "--no-search"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = spawn(argv, "submit");
    const int code = p->exit_code(60s);
    INFO(p->err());
    return code;
  }
  std::unique_ptr<Subprocess> node(int i, const std::string& mode, const std::vector<std::string>& extra = {}) const {
    const std::string name = "node" + std::to_string(i);
    auto argv = base("work");
    argv.insert(argv.end(), {"--base-url", sim.base_url(), "--mode", mode, "--concurrency", "16", "--timeout", "2",
                             "--max-retries", "1", "--lease-grace", "1", "--delay", "0", "--no-search", "--quiet",
                             "--node-name", name, "--log-file", (dir / (name + ".log")).string()});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return spawn(argv, name);
  }
  std::map<std::string, long long> status() const {
    auto p = spawn(base("status"), "status");
    REQUIRE(p->exit_code(30s) == 0);
    std::map<std::string, long long> out;
    std::istringstream in(p->out());
    std::string line;
    while (std::getline(in, line)) {  // "key value"; the job's and the nodes' lines have more words
      std::istringstream words(line);
      std::string key, value, more;
      if (!(words >> key >> value) || (words >> more)) continue;
      try {
        out[key] = std::stoll(value);
      } catch (const std::exception&) {
      }
    }
    return out;
  }
  long long done() const {
    auto c = client_of(redis);
    return c->command_ok({"HLEN", keys_of(job, "done")}).as_integer();
  }
  // Entries pending with `consumer`.
  long long pending_of(const std::string& consumer) const {
    auto c = client_of(redis);
    const auto r = c->command_ok({"XPENDING", keys_of(job, "tasks"), "nodes"});
    if (r.at(3).is_nil()) return 0;
    for (const auto& pair : r.at(3).as_array()) {
      if (pair.at(0).as_string() == consumer) return std::stoll(pair.at(1).as_string());
    }
    return 0;
  }
  // collect's report: topic -> status, each topic counted.
  struct Collected {
    int exit_code = -1;
    std::map<std::string, std::string> status_of;
    std::map<std::string, int> times;
    std::map<std::string, std::string> error_of;
    std::size_t results = 0;
    long long total_tasks = -1;
  };
  Collected collect(const std::vector<std::string>& extra = {}) const {
    auto argv = base("collect");
    argv.insert(argv.end(), {"--output", (dir / "report.json").string()});
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = spawn(argv, "collect");
    Collected c;
    c.exit_code = p->exit_code(60s);
    INFO(p->err());
    rapidjson::Document d;
    d.Parse(read_text(dir / "report.json").c_str());
    REQUIRE(d.IsObject());
    c.total_tasks = d["summary"]["total_tasks"].GetInt64();
    for (const auto& r : d["results"].GetArray()) {
      const std::string topic = r["topic"].GetString();
      c.status_of[topic] = r["status"].GetString();
      if (r.HasMember("error_message") && r["error_message"].IsString()) c.error_of[topic] = r["error_message"].GetString();
      ++c.times[topic];
      ++c.results;
    }
    return c;
  }
};

std::vector<std::string> numbered(int n, const std::string& prefix = "topic ") {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(prefix + std::to_string(i));
  return v;
}

void require_each_once_succeeded(const Fleet::Collected& c, const std::vector<std::string>& topics) {
  CHECK(c.results == topics.size());
  CHECK(c.total_tasks == static_cast<long long>(topics.size()));
  std::size_t missing = 0, repeated = 0, failed = 0;
  for (const auto& t : topics) {
    const auto it = c.times.find(t);
    if (it == c.times.end()) ++missing;
    else if (it->second != 1) ++repeated;
    else if (c.status_of.at(t) != "succeeded") ++failed;
  }
  CHECK(missing == 0);
  CHECK(repeated == 0);
  CHECK(failed == 0);
}

}  // namespace

TEST_CASE("a fleet loses nothing when a node is killed and another is stopped past its lease",
          "[fleet][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("mode " << mode);
  Fleet f;
  const auto topics = numbered(kManyTopics);
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  auto n1 = f.node(1, mode);
  // Node 2's attempts may run 30 s (the others reclaim by their own 5 s lease): when it is continued,
  // the answers of the attempts it was running are in, and become its (duplicate) results, instead of
  // timing out into retries that its SIGTERM would cancel.
  auto n2 = f.node(2, mode, {"--timeout", "30"});
  auto n3 = f.node(3, mode);
  const long long total = static_cast<long long>(topics.size());
  REQUIRE(eventually([&] { return f.done() >= total / 10; }, 60s));
  n1->signal(SIGKILL);  // node 1 dies holding tasks
  REQUIRE(n1->exit_code(10s) == 128 + SIGKILL);
  // Node 2 stops while it holds tasks, and stays stopped until another node has taken them all. A stop
  // that lands just after it finished what it held is undone and tried again.
  bool stopped_holding = false;
  for (int tries = 0; tries < 20 && !stopped_holding; ++tries) {
    REQUIRE(eventually([&] { return f.pending_of("node2") > 0; }, 30s));
    n2->signal(SIGSTOP);
    stopped_holding = f.pending_of("node2") > 0;
    if (!stopped_holding) n2->signal(SIGCONT);
  }
  REQUIRE(stopped_holding);
  const bool taken = eventually([&] { return f.pending_of("node2") == 0 || f.done() == total; }, 60s);
  n2->signal(SIGCONT);
  REQUIRE(taken);
  REQUIRE(eventually([&] { return f.done() == total; }, 120s));
  // Node 2's results for the tasks taken from it arrive after theirs: counted, not written. Its
  // terminal records are written before it exits on SIGTERM.
  n2->signal(SIGTERM);
  n3->signal(SIGTERM);
  CHECK(n2->exit_code(60s) == 143);
  CHECK(n3->exit_code(60s) == 143);
  const auto st = f.status();
  CHECK(st.at("done") == total);
  CHECK(st.at("succeeded") == total);
  CHECK(st.at("reclaimed") > 0);
  CHECK(st.at("duplicates") > 0);
  CHECK(st.at("in_flight") == 0);
  const auto c = f.collect();
  CHECK(c.exit_code == 0);
  require_each_once_succeeded(c, topics);
}

TEST_CASE("a fleet completes across a Redis restart on its AOF, nothing lost or duplicated", "[fleet][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("mode " << mode);
  Fleet f;
  const auto topics = numbered(kManyTopics / 3);
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  auto n1 = f.node(1, mode);
  auto n2 = f.node(2, mode);
  const long long total = static_cast<long long>(topics.size());
  // Both nodes are connected and working (a node slow to start, under a sanitizer, would otherwise
  // connect only after the restart and never see the outage), and a fifth of the tasks are done.
  const auto working = [&](const char* log) {
    return read_text(f.dir / log).find(" working on job ") != std::string::npos;
  };
  REQUIRE(eventually([&] { return f.done() >= total / 5 && working("node1.log") && working("node2.log"); }, 60s));
  f.redis.shutdown();
  f.redis.start();
  REQUIRE(eventually([&] { return f.done() == total; }, 120s));
  n1->signal(SIGTERM);
  n2->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
  CHECK(n2->exit_code(60s) == 143);
  // The nodes saw the outage, and wrote what they kept meanwhile once Redis was back.
  for (const char* log : {"node1.log", "node2.log"}) {
    const std::string text = read_text(f.dir / log);
    CHECK_THAT(text, Catch::Contains("taking no task until it is back") && Catch::Contains("Redis is back"));
  }
  const auto c = f.collect();
  CHECK(c.exit_code == 0);
  require_each_once_succeeded(c, topics);
}

TEST_CASE("a node keeps its records in its node journal while Redis is down, and a node writes them later",
          "[fleet][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("mode " << mode);
  // Answers take 300 ms: the node (16 at a time) is still busy for seconds when Redis goes away.
  Fleet f({"--latency-ms", "300"});
  const auto topics = numbered(300);
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  const fs::path journal = f.dir / "node1.pending.jsonl";
  const std::vector<std::string> args = {"--node-journal", journal.string(), "--drain-grace", "1"};
  auto n1 = f.node(1, mode, args);
  const long long total = static_cast<long long>(topics.size());
  REQUIRE(eventually([&] { return f.done() >= 20; }, 60s));
  f.redis.shutdown();
  // The tasks in flight finish with nowhere to go: they wait in the node journal.
  REQUIRE(eventually([&] { return fs::exists(journal) && fs::file_size(journal) > 0; }, 30s));
  n1->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
  REQUIRE(fs::exists(journal));
  CHECK_THAT(read_text(f.dir / "node1.log"), Catch::Contains("kept in the node journal"));
  f.redis.start();
  auto again = f.node(1, mode, args);
  REQUIRE(eventually([&] { return f.done() == total; }, 120s));
  again->signal(SIGTERM);
  CHECK(again->exit_code(60s) == 143);
  CHECK_FALSE(fs::exists(journal));  // written, so removed
  const auto c = f.collect();
  CHECK(c.exit_code == 0);
  require_each_once_succeeded(c, topics);
}

TEST_CASE("a task that kills its node on every delivery ends failed after --max-retries + 1 deliveries",
          "[fleet]") {
  // In threading and asyncio modes the simulator's kill_client fault kills the node itself (in
  // multiprocessing, its worker: the local engine fails the task, supervisor_test.cpp).
  const std::string mode = GENERATE(as<std::string>{}, "threading", "asyncio");
  INFO("mode " << mode);
  Fleet f;
  std::vector<std::string> topics = numbered(20);
  const std::string poison = "boom [[fault:kill_client]]";
  topics.push_back(poison);
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  std::vector<std::unique_ptr<Subprocess>> nodes;
  // One task at a time per node: a node the poison kills takes no other task down with it (whose
  // deliveries would count too).
  const std::vector<std::string> args = {"--timeout", "1", "--lease-grace", "0.5", "--concurrency", "1"};
  for (int i = 1; i <= 3; ++i) nodes.push_back(f.node(i, mode, args));
  int restarts = 0;
  // A node that died is started again (as a deployment's restart policy would).
  const bool finished = eventually(
      [&] {
        for (std::size_t i = 0; i < nodes.size(); ++i) {
          if (nodes[i]->wait_for(0ms)) {
            ++restarts;
            nodes[i] = f.node(static_cast<int>(i + 1), mode, args);
          }
        }
        return f.done() == static_cast<long long>(topics.size());
      },
      120s);
  REQUIRE(finished);
  for (auto& n : nodes) n->signal(SIGTERM);
  for (auto& n : nodes) CHECK(n->exit_code(60s) == 143);
  CHECK(restarts == 2);  // --max-retries 1: two deliveries, each killing its node; the third is refused
  const auto st = f.status();
  CHECK(st.at("dead_lettered") == 1);
  const auto c = f.collect();
  CHECK(c.exit_code == 1);
  CHECK(c.status_of.at(poison) == "failed");
  CHECK_THAT(c.error_of.at(poison), Catch::Contains("delivered 3 times"));
  for (int i = 0; i < 20; ++i) CHECK(c.status_of.at("topic " + std::to_string(i)) == "succeeded");
}

TEST_CASE("tasks a stopping node hands back unrun keep their delivery count", "[fleet]") {
  // --max-retries 0: one delivery each. Node 1's attempts outlast its drain grace: its stop cancels
  // them and hands the tasks back; node 2 then runs them as their first (and only) delivery.
  Fleet f({"--latency-ms", "3000"});
  const auto topics = numbered(8);
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  const std::vector<std::string> args = {"--max-retries", "0", "--timeout", "30", "--drain-grace", "0.2"};
  std::vector<std::string> first = args;
  first.insert(first.end(), {"--concurrency", "4"});
  auto n1 = f.node(1, "asyncio", first);
  REQUIRE(eventually([&] { return f.pending_of("node1") == 4; }, 30s));
  n1->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
  CHECK(f.done() == 0);
  auto n2 = f.node(2, "asyncio", args);
  REQUIRE(eventually([&] { return f.done() == 8; }, 120s));
  n2->signal(SIGTERM);
  CHECK(n2->exit_code(60s) == 143);
  CHECK(f.status().at("dead_lettered") == 0);
  const auto c = f.collect();
  CHECK(c.exit_code == 0);
  require_each_once_succeeded(c, topics);
}

TEST_CASE("a node facing a Redis that refuses writes logs the error once, then carries on when it accepts them",
          "[fleet]") {
  Fleet f;
  const auto topics = numbered(20);
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  auto c = client_of(f.redis);
  c->command_ok({"CONFIG", "SET", "maxmemory", "1"});  // every write: -OOM
  auto errors = [&] {
    const std::string info = c->command_ok({"INFO", "stats"}).as_string();
    std::smatch m;
    return std::regex_search(info, m, std::regex("total_error_replies:(\\d+)")) ? std::stoll(m[1].str()) : 0LL;
  };
  const long long before = errors();
  auto n1 = f.node(1, "threading");
  // The node tries again and again (a pass every poll)...
  REQUIRE(eventually([&] { return errors() >= before + 20; }, 60s));
  c->command_ok({"CONFIG", "SET", "maxmemory", "0"});
  REQUIRE(eventually([&] { return f.done() == 20; }, 60s));
  n1->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
  // ...and says so once.
  const std::string log = read_text(f.dir / "node1.log");
  std::size_t said = 0;
  for (auto at = log.find("OOM"); at != std::string::npos; at = log.find("OOM", at + 1)) ++said;
  CHECK(said == 1);
  require_each_once_succeeded(f.collect(), topics);
}

TEST_CASE("a submit killed and run again adds nothing twice", "[fleet]") {
  Fleet f;
#ifdef CBM_TEST_SANITIZED
  const int n = 20000;
#else
  const int n = 100000;
#endif
  f.write_topics(numbered(n));
  auto argv = f.base("submit");
  argv.insert(argv.end(), {"--topics-file", (f.dir / "topics.txt").string(), "--no-search"});
  auto first = f.spawn(argv, "submit1");
  auto c = client_of(f.redis);
  const std::string tasks = keys_of(f.job, "tasks");
  const bool started = eventually([&] {
    const auto r = c->command({"XLEN", tasks});
    return !r.is_error() && r.as_integer() > 0;
  }, 30s);
  first->signal(SIGKILL);
  first->exit_code(10s);
  REQUIRE(started);
  const long long before = c->command_ok({"XLEN", tasks}).as_integer();
  INFO("entries before the rerun: " << before);
  REQUIRE(f.submit() == 0);
  CHECK(c->command_ok({"XLEN", tasks}).as_integer() == n);
  // Every id once, 0 to n-1.
  std::set<long long> ids;
  std::string from = "-";
  for (;;) {
    const auto r = c->command_ok({"XRANGE", tasks, from, "+", "COUNT", "10000"});
    if (r.as_array().empty()) break;
    for (const auto& e : r.as_array()) {
      const auto& kv = e.at(1).as_array();
      for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
        if (kv[i].as_string() == "id") ids.insert(std::stoll(kv[i + 1].as_string()));
      }
    }
    from = "(" + r.as_array().back().at(0).as_string();
  }
  CHECK(ids.size() == static_cast<std::size_t>(n));
  CHECK(*ids.begin() == 0);
  CHECK(*ids.rbegin() == n - 1);
}

TEST_CASE("a fleet monitor runs round after round, a standby taking over from a killed leader and a stopped one",
          "[fleet][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("mode " << mode);
  Fleet f;
  const auto topics = numbered(40);
  f.write_topics(topics);
  auto leader_argv = f.base("submit");
  leader_argv.insert(leader_argv.end(), {"--topics-file", (f.dir / "topics.txt").string(), "--no-search",
                                         "--iterations", "0", "--delay", "0.2", "--leader-lease", "2"});
  auto c = client_of(f.redis);
  auto round = [&] {
    const auto r = c->command_ok({"HGET", keys_of(f.job, "meta"), "round"});
    return r.is_nil() ? 0LL : std::stoll(r.as_string());
  };
  auto a = f.spawn(leader_argv, "submit-a");
  REQUIRE(eventually([&] { return a->err().find("leading as") != std::string::npos; }, 30s));
  auto b = f.spawn(leader_argv, "submit-b");
  REQUIRE(eventually([&] { return b->err().find("standby; the leader is") != std::string::npos; }, 30s));
  auto n1 = f.node(1, mode);
  auto n2 = f.node(2, mode);
  // The leader dies: the standby leads within one lease, and the rounds go on.
  REQUIRE(eventually([&] { return round() >= 2; }, 60s));
  a->signal(SIGKILL);
  REQUIRE(a->exit_code(10s) == 128 + SIGKILL);
  REQUIRE(eventually([&] { return b->err().find("leading as") != std::string::npos; }, 30s));
  const long long taken_over_at = round();
  REQUIRE(eventually([&] { return round() >= taken_over_at + 1; }, 60s));
  // TERM hands the lease over at once: the next standby leads.
  auto d = f.spawn(leader_argv, "submit-d");
  REQUIRE(eventually([&] { return d->err().find("standby") != std::string::npos; }, 30s));
  b->signal(SIGTERM);
  CHECK(b->exit_code(30s) == 143);
  REQUIRE(eventually([&] { return d->err().find("leading as") != std::string::npos; }, 30s));
  const long long handed_over_at = round();
  REQUIRE(eventually([&] { return round() >= handed_over_at + 2; }, 60s));
  d->signal(SIGTERM);
  CHECK(d->exit_code(30s) == 143);
  n1->signal(SIGTERM);
  n2->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
  CHECK(n2->exit_code(60s) == 143);
  // Redis holds two rounds, whatever the monitor ran: the older ones are gone.
  const long long last = round();
  CHECK(c->command_ok({"EXISTS", keys_of(f.job, "r" + std::to_string(last - 2) + ":tasks")}).as_integer() == 0);
  // The newest complete round: every topic once, succeeded, its round in the records and the report.
  const auto report = f.collect({"--round", std::to_string(last - 1)});
  CHECK(report.exit_code == 0);
  require_each_once_succeeded(report, topics);
  rapidjson::Document doc;
  doc.Parse(read_text(f.dir / "report.json").c_str());
  REQUIRE(doc.IsObject());
  CHECK(doc["fleet"]["round"].GetInt64() == last - 1);
  CHECK(doc["results"][0]["round"].GetInt64() == last - 1);
  CHECK(f.collect({"--round", std::to_string(last + 1)}).exit_code == 2);
}

TEST_CASE("a fleet monitor's leader stopped past its lease comes back as a standby and the rounds only go forward",
          "[fleet]") {
  Fleet f;
  f.write_topics(numbered(20));
  auto argv = f.base("submit");
  argv.insert(argv.end(), {"--topics-file", (f.dir / "topics.txt").string(), "--no-search", "--iterations", "0",
                           "--delay", "0.1", "--leader-lease", "1"});
  auto c = client_of(f.redis);
  long long highest = 0;
  bool went_back = false;
  auto round = [&] {
    const auto r = c->command_ok({"HGET", keys_of(f.job, "meta"), "round"});
    const long long now = r.is_nil() ? 0LL : std::stoll(r.as_string());
    if (now < highest) went_back = true;
    highest = std::max(highest, now);
    return now;
  };
  auto a = f.spawn(argv, "submit-a");
  REQUIRE(eventually([&] { return a->err().find("leading as") != std::string::npos; }, 30s));
  auto b = f.spawn(argv, "submit-b");
  auto n1 = f.node(1, "asyncio");
  REQUIRE(eventually([&] { return round() >= 2; }, 60s));
  a->signal(SIGSTOP);
  REQUIRE(eventually([&] { return b->err().find("leading as") != std::string::npos; }, 30s));
  const long long at = round();
  REQUIRE(eventually([&] { return round() >= at + 2; }, 60s));
  a->signal(SIGCONT);
  // The old leader finds it no longer leads and stands by; the monitor goes on.
  const bool stood_by = eventually([&] { return a->err().find("standing by") != std::string::npos; }, 30s);
  INFO("the old leader said: " << a->err());
  REQUIRE(stood_by);
  const long long after = round();
  REQUIRE(eventually([&] { return round() >= after + 2; }, 60s));
  CHECK_FALSE(went_back);
  for (auto* p : {a.get(), b.get(), n1.get()}) p->signal(SIGTERM);
  CHECK(a->exit_code(30s) == 143);
  CHECK(b->exit_code(30s) == 143);
  CHECK(n1->exit_code(60s) == 143);
}

TEST_CASE("a fleet monitor of --iterations N ends after N rounds, its leader and a late submit exiting 0",
          "[fleet]") {
  Fleet f;
  const auto topics = numbered(10);
  f.write_topics(topics);
  auto argv = f.base("submit");
  argv.insert(argv.end(), {"--topics-file", (f.dir / "topics.txt").string(), "--no-search", "--iterations", "3",
                           "--delay", "0"});
  auto leader = f.spawn(argv, "leader");
  REQUIRE(eventually([&] { return leader->err().find("leading as") != std::string::npos; }, 30s));
  auto n1 = f.node(1, "asyncio");  // the job exists now
  CHECK(leader->exit_code(60s) == 0);
  auto c = client_of(f.redis);
  CHECK(c->command_ok({"HGET", keys_of(f.job, "meta"), "round"}).as_string() == "3");
  const auto st = f.status();
  CHECK(st.at("done") == 10);
  CHECK(st.at("succeeded") == 30);
  CHECK(f.submit({"--iterations", "3", "--delay", "0"}) == 0);  // finished: nothing more to do
  CHECK(f.submit({"--iterations", "2"}) == 2);                  // another kind of job: refused
  CHECK(f.submit() == 2);
  n1->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
  const auto report = f.collect();
  CHECK(report.exit_code == 0);
  require_each_once_succeeded(report, topics);
}

TEST_CASE("a submit stopped by TERM exits 143 saying how far it got, and the next one completes the job",
          "[fleet]") {
  Fleet f;
  const int n = 100000;
  f.write_topics(numbered(n));
  auto argv = f.base("submit");
  argv.insert(argv.end(), {"--topics-file", (f.dir / "topics.txt").string(), "--no-search"});
  auto first = f.spawn(argv, "submit1");
  auto c = client_of(f.redis);
  const std::string tasks = keys_of(f.job, "tasks");
  REQUIRE(eventually([&] {
    const auto r = c->command({"XLEN", tasks});
    return !r.is_error() && r.as_integer() > 0;
  }, 30s));
  first->signal(SIGTERM);
  const int code = first->exit_code(60s);
  INFO(first->err());
  if (code == 143) {
    CHECK_THAT(first->err(), Catch::Contains("stopped after") && Catch::Contains("the same submit again"));
    CHECK(c->command_ok({"XLEN", tasks}).as_integer() < n);
  } else {
    CHECK(code == 0);  // it had enqueued everything before the signal came
  }
  REQUIRE(f.submit() == 0);
  CHECK(c->command_ok({"XLEN", tasks}).as_integer() == n);
}

TEST_CASE("a node or a submit with other settings than the job's is refused with exit 2 naming them",
          "[fleet]") {
  Fleet f;
  f.write_topics(numbered(3));
  REQUIRE(f.submit() == 0);
  auto node = f.node(1, "threading", {"--temperature", "0.3"});
  CHECK(node->exit_code(30s) == 2);
  CHECK_THAT(node->err(), Catch::Contains("--temperature: 0.6 in the job, 0.3 now"));
  CHECK(f.submit({"--chat-model", "glm-4-air"}) == 2);
  // A job that does not exist: a node refuses it too.
  Fleet g;
  g.job = "nosuchjob";
  auto lost = g.node(1, "threading");
  CHECK(lost->exit_code(30s) == 2);
  CHECK_THAT(lost->err(), Catch::Contains("does not exist"));
}

TEST_CASE("fleet commands refuse a bad job name, rediss:// and an unreachable Redis clearly", "[fleet]") {
  Fleet f;
  auto run = [&](std::vector<std::string> argv) {
    auto p = f.spawn(std::move(argv), "cmd");
    const int code = p->exit_code(60s);
    return std::make_pair(code, p->err());
  };
  auto [c1, e1] = run({supervisor_path(), "status", "--redis", f.redis.url(), "--job", "bad name!"});
  CHECK(c1 == 2);
  CHECK_THAT(e1, Catch::Contains("--job") && Catch::Contains("bad name!"));
  auto [c4, e4] = run({supervisor_path(), "work", "--redis", f.redis.url(), "--job", "j", "--node-name", "a b"});
  CHECK(c4 == 2);
  CHECK_THAT(e4, Catch::Contains("--node-name") && Catch::Contains("'a b' is not a node name"));
  auto [c2, e2] = run({supervisor_path(), "status", "--redis", "rediss://:pw@127.0.0.1:1/0", "--job", "j"});
  CHECK(c2 == 2);
  CHECK_THAT(e2, Catch::Contains("TLS"));
  auto [c3, e3] = run({supervisor_path(), "status", "--redis", "redis://:s3cretpw@127.0.0.1:1/0", "--job", "j",
                       "--redis-wait", "0.5"});
  CHECK(c3 == 3);
  CHECK_THAT(e3, Catch::Contains("unavailable"));
  CHECK(e3.find("s3cretpw") == std::string::npos);
}

TEST_CASE("collect --follow keeps the report until the job is complete, status names the nodes, a node's "
          "metrics count its fleet work",
          "[fleet]") {
  Fleet f;
  const auto topics = numbered(100);
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  auto argv = f.base("collect");
  argv.insert(argv.end(), {"--output", (f.dir / "follow.json").string(), "--follow"});
  auto follow = f.spawn(argv, "follow");
  auto n1 = f.node(1, "asyncio", {"--metrics-addr", "127.0.0.1:0"});
  // It ends once the job is complete, with the whole report.
  CHECK(follow->exit_code(120s) == 0);
  CHECK(f.done() == 100);
  rapidjson::Document d;
  d.Parse(read_text(f.dir / "follow.json").c_str());
  REQUIRE(d.IsObject());
  CHECK(d["summary"]["total_tasks"].GetInt() == 100);
  CHECK(d["summary"]["successful_tasks"].GetInt() == 100);
  CHECK(d["fleet"]["complete"].GetBool());
  CHECK(d["results"].Size() == 100);

  auto st = f.spawn(f.base("status"), "status");
  REQUIRE(st->exit_code(30s) == 0);
  CHECK_THAT(st->out(), Catch::Contains("node node1 last_seen_ms_ago "));

  static const std::regex serving(R"(metrics: serving (http://127\.0\.0\.1:\d+/metrics))");
  std::smatch m;
  std::string log;
  REQUIRE(eventually([&] {
    log = read_text(f.dir / "node1.log");
    return std::regex_search(log, m, serving);
  }));
  const HttpReply metrics = http_request("GET", m[1].str());
  CHECK(metrics.status == 200);
  CHECK_THAT(metrics.body, Catch::Contains("cbm_fleet_reclaimed_total 0") &&
                               Catch::Contains("cbm_fleet_duplicates_total 0") &&
                               Catch::Contains("cbm_tasks_total"));
  n1->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
}

TEST_CASE("a topic repeated in the input is run once and reported for each occurrence, as in a local run",
          "[fleet]") {
  Fleet f;
  const std::vector<std::string> topics = {"alpha", "beta", "alpha", "gamma", "alpha", "beta"};
  f.write_topics(topics);
  REQUIRE(f.submit() == 0);
  auto c = client_of(f.redis);
  CHECK(c->command_ok({"XLEN", keys_of(f.job, "tasks")}).as_integer() == 3);  // alpha, beta, gamma
  auto n1 = f.node(1, "threading");
  // Done when the three distinct topics are: the repeats need no run.
  REQUIRE(eventually([&] { return f.done() == 3; }, 60s));
  n1->signal(SIGTERM);
  CHECK(n1->exit_code(60s) == 143);
  const auto st = f.status();
  CHECK(st.at("repeated") == 3);
  CHECK(st.at("queued") == 0);
  auto argv = f.base("collect");
  argv.insert(argv.end(), {"--output", (f.dir / "report.json").string()});
  auto p = f.spawn(argv, "collect");
  CHECK(p->exit_code(60s) == 0);
  rapidjson::Document d;
  d.Parse(read_text(f.dir / "report.json").c_str());
  REQUIRE(d.IsObject());
  CHECK(d["summary"]["total_tasks"].GetInt() == 6);
  CHECK(d["summary"]["successful_tasks"].GetInt() == 6);
  REQUIRE(d["results"].Size() == 6);
  std::map<long long, long long> duplicate_of;  // id -> the id it copies
  for (const auto& r : d["results"].GetArray()) {
    if (r.HasMember("duplicate_of") && r["duplicate_of"].IsInt64()) {
      duplicate_of[r["id"].GetInt64()] = r["duplicate_of"].GetInt64();
    }
  }
  CHECK(duplicate_of == std::map<long long, long long>{{2, 0}, {4, 0}, {5, 1}});
}
