// The engine's rules, driven deterministically: a scripted transport and a clock moved by hand.
// Nothing here waits for real time: when the engine sleeps, the clock jumps to its wake-up (or to the
// next scripted event), so every test runs in microseconds and its timings are exact.
#include "attempt_engine.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "logger.hpp"
#include "progress.hpp"
#include "run_ledger.hpp"
#include "run_observer.hpp"
#include "topic_source.hpp"

using namespace std::chrono_literals;
using cbm::AttemptOutcome;
using cbm::Clock;
using cbm::TaskResult;
using cbm::TaskStatus;

namespace {

class ManualClock final : public cbm::RunClock {
 public:
  Clock::time_point now() const override { return now_; }
  // The wall clock moves with the steady one, from a fixed instant.
  cbm::WallClock::time_point wall_now() const override {
    return kWallStart + std::chrono::duration_cast<cbm::WallClock::duration>(now_ - kStart);
  }
  void advance_to(Clock::time_point t) { now_ = std::max(now_, t); }

 private:
  static constexpr Clock::time_point kStart{std::chrono::hours(1)};
  static constexpr cbm::WallClock::time_point kWallStart{std::chrono::hours(24 * 365 * 56)};
  Clock::time_point now_{kStart};
};

// What an attempt does: ends after `after` with `outcome`, or never (nullopt: it hangs until cancelled).
struct Step {
  Clock::duration after;
  std::optional<AttemptOutcome> outcome;
};
using Script = std::function<Step(const cbm::Task&)>;

AttemptOutcome ok() {
  AttemptOutcome o;
  o.analysis = "fine";
  return o;
}

AttemptOutcome failed(cbm::ErrorClass c, std::string code = "") {
  AttemptOutcome o;
  o.error.emplace();
  o.error->error_class = c;
  o.error->kind = cbm::ErrorKind::api;
  o.error->http_status = c == cbm::ErrorClass::run_fatal ? 401 : 500;
  o.error->code = std::move(code);
  o.error->message = "scripted";
  return o;
}

struct Start {
  std::size_t slot;
  std::uint64_t task;
  int attempt;
  Clock::time_point at;
};

class ScriptedTransport final : public cbm::Transport {
 public:
  ScriptedTransport(std::size_t slots, ManualClock& clock, Script script)
      : clock_(clock), script_(std::move(script)), running_(slots) {}

  std::size_t slots() const override { return running_.size(); }
  std::string_view slot_label() const override { return "s"; }
  void start(std::size_t slot, const cbm::Task& task, Clock::time_point) override {
    REQUIRE_FALSE(running_[slot]);
    starts.push_back({slot, task.id, task.attempt, clock_.now()});
    Step step = script_(task);
    running_[slot] = Running{clock_.now() + step.after, std::move(step.outcome)};
    if (!running_[slot]->outcome) running_[slot]->end = Clock::time_point::max();
  }
  void cancel(std::size_t slot, cbm::CancelCause cause) override {
    cancels.emplace_back(slot, cause);
    // An attempt already over keeps its outcome: the cancel came too late to change it.
    if (!running_[slot] || running_[slot]->end <= clock_.now()) return;
    AttemptOutcome aborted;
    aborted.error.emplace();
    aborted.error->kind = cbm::ErrorKind::cancelled;
    aborted.error->message = "aborted by the transport";
    running_[slot] = Running{clock_.now(), std::move(aborted)};
  }
  void wait(Clock::time_point until, cbm::AttemptSink& sink) override {
    REQUIRE(++waits < 100000);  // an engine that never finishes fails here instead of hanging
    Clock::time_point next = until;
    for (const auto& r : running_) {
      if (r) next = std::min(next, r->end);
    }
    if (!events.empty()) next = std::min(next, events.begin()->first);
    REQUIRE(next != Clock::time_point::max());
    clock_.advance_to(next);
    while (!events.empty() && events.begin()->first <= clock_.now()) {
      auto event = std::move(events.begin()->second);
      events.erase(events.begin());
      event();
    }
    for (std::size_t slot = 0; slot < running_.size(); ++slot) {
      if (running_[slot] && running_[slot]->end <= clock_.now()) {
        AttemptOutcome o = std::move(*running_[slot]->outcome);
        running_[slot].reset();
        sink.attempt_ended(slot, std::move(o));
      }
    }
  }

  std::vector<Start> starts;
  std::vector<std::pair<std::size_t, cbm::CancelCause>> cancels;
  std::multimap<Clock::time_point, std::function<void()>> events;  // things that happen at a time
  int waits = 0;

 private:
  struct Running {
    Clock::time_point end;
    std::optional<AttemptOutcome> outcome;
  };
  ManualClock& clock_;
  Script script_;
  std::vector<std::optional<Running>> running_;
};

class Records final : public cbm::RunObserver {
 public:
  void task_finished(const TaskResult& r) override { by_id[r.id].push_back(r); }
  const TaskResult& of(std::uint64_t id) const {
    REQUIRE(by_id.count(id) == 1);
    REQUIRE(by_id.at(id).size() == 1);
    return by_id.at(id).front();
  }
  std::map<std::uint64_t, std::vector<TaskResult>> by_id;
};

// One engine over a scripted transport, and what it needs around it.
struct Bench {
  explicit Bench(Script script, std::size_t slots = 2, std::function<void(cbm::RunConfig&)> tune = {},
                 cbm::DrainPolicy drain = cbm::DrainPolicy::in_flight) {
    config.concurrency = static_cast<int>(slots);
    config.delay = 0ms;
    config.timeout = 10s;
    config.drain_grace = 5s;
    if (tune) tune(config);
    ledger = std::make_unique<cbm::RunLedger>(config);
    ledger->observe(records);
    progress = std::make_unique<cbm::Progress>(*ledger, true, 10s);
    auto t = std::make_unique<ScriptedTransport>(slots, clock, std::move(script));
    transport = t.get();
    engine = std::make_unique<cbm::AttemptEngine>(
        cbm::ExecutorContext{config, *ledger, control, log, *progress, observers, clock}, std::move(t), drain);
  }

  std::size_t run(std::vector<std::string> topics, std::uint32_t round = 1) {
    auto source = cbm::topics_from_list(std::make_shared<const std::vector<std::string>>(std::move(topics)));
    ledger->begin_round(round);
    const std::size_t planned = engine->run_round(round, *source);
    ledger->end_round(round, planned);
    return planned;
  }

  cbm::RunConfig config;
  ManualClock clock;
  cbm::RunControl control;
  cbm::Logger log{"", false};
  Records records;
  cbm::ObserverList observers;
  std::unique_ptr<cbm::RunLedger> ledger;
  std::unique_ptr<cbm::Progress> progress;
  ScriptedTransport* transport = nullptr;
  std::unique_ptr<cbm::AttemptEngine> engine;
};

// A usage cap (1308) whose reset is `ahead` of now (none: the message named no plausible time).
AttemptOutcome quota(std::optional<cbm::WallClock::time_point> resume_at) {
  AttemptOutcome o = failed(cbm::ErrorClass::wait_until, "1308");
  o.error->http_status = 429;
  o.error->resume_at = resume_at;
  return o;
}

// What the engine told observers of usage-cap pauses, in order.
class PauseLog final : public cbm::RunObserver {
 public:
  void quota_paused(std::optional<cbm::WallClock::time_point> until) override { calls.push_back(until); }
  std::vector<std::optional<cbm::WallClock::time_point>> calls;
};

std::vector<std::string> topics(int n) {
  std::vector<std::string> t;
  for (int i = 0; i < n; ++i) t.push_back("topic " + std::to_string(i));
  return t;
}

}  // namespace

TEST_CASE("engine: a transient failure is retried after its backoff, and the task succeeds once", "[engine]") {
  Bench b([](const cbm::Task& t) {
    return Step{100ms, t.attempt < 3 ? failed(cbm::ErrorClass::retryable) : ok()};
  });
  REQUIRE(b.run({"flaky"}) == 1);
  const TaskResult& r = b.records.of(0);
  CHECK(r.status == TaskStatus::succeeded);
  CHECK(r.attempts == 3);
  REQUIRE(b.transport->starts.size() == 3);
  // Full jitter: retry n waits at most min(cap, base * 2^n) after the failure, never before it.
  const auto& s = b.transport->starts;
  CHECK(s[1].at >= s[0].at + 100ms);
  CHECK(s[1].at <= s[0].at + 100ms + b.config.retry.base);
  CHECK(s[2].at >= s[1].at + 100ms);
  CHECK(s[2].at <= s[1].at + 100ms + 2 * b.config.retry.base);
}

TEST_CASE("engine: retries run out after --max-retries and the task fails with the last error", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{10ms, failed(cbm::ErrorClass::retryable, "1234")}; });
  b.run({"always failing"});
  const TaskResult& r = b.records.of(0);
  CHECK(r.status == TaskStatus::failed);
  CHECK(r.attempts == b.config.retry.max_retries + 1);
  CHECK(r.error->code == "1234");
}

TEST_CASE("engine: a task-fatal error fails the task at once, the others go on", "[engine]") {
  Bench b([](const cbm::Task& t) {
    return Step{10ms, t.topic == "bad" ? failed(cbm::ErrorClass::task_fatal) : ok()};
  });
  b.run({"good", "bad", "good too"});
  CHECK(b.records.of(1).status == TaskStatus::failed);
  CHECK(b.records.of(1).attempts == 1);
  CHECK(b.records.of(0).status == TaskStatus::succeeded);
  CHECK(b.records.of(2).status == TaskStatus::succeeded);
}

TEST_CASE("engine: an attempt past --timeout is ended by the engine and retried as a timeout", "[engine]") {
  Bench b([](const cbm::Task& t) { return t.attempt == 1 ? Step{0ms, std::nullopt} : Step{10ms, ok()}; });
  b.run({"hangs once"});
  REQUIRE(b.transport->cancels.size() == 1);
  CHECK(b.transport->cancels[0].second == cbm::CancelCause::timeout);
  const auto& s = b.transport->starts;
  REQUIRE(s.size() == 2);
  CHECK(s[1].at >= s[0].at + b.config.timeout);
  const TaskResult& r = b.records.of(0);
  CHECK(r.status == TaskStatus::succeeded);
  CHECK(r.attempts == 2);
}

TEST_CASE("engine: a run-fatal error aborts the run, every other topic gets one cancelled record",
          "[engine]") {
  Bench b([](const cbm::Task& t) {
    return t.topic == "topic 0" ? Step{10ms, failed(cbm::ErrorClass::run_fatal)} : Step{1s, ok()};
  });
  const std::size_t read = b.run(topics(20));
  // 2 slots and a read-ahead of 4 x 2: the topics read get a record each, the rest one range.
  CHECK(read == 10);
  REQUIRE(b.ledger->abort_reason());
  CHECK(b.records.by_id.size() == 10);
  CHECK(b.records.of(0).status == TaskStatus::failed);
  // The other slot's attempt was ended at once, not waited for.
  REQUIRE(b.transport->cancels.size() == 1);
  CHECK(b.transport->cancels[0].second == cbm::CancelCause::stop);
  for (std::uint64_t id = 1; id < 10; ++id) {
    const TaskResult& r = b.records.of(id);
    CHECK(r.status == TaskStatus::cancelled);
    CHECK_THAT(r.error->message, Catch::StartsWith("cancelled: the run was aborted"));
  }
  const auto unread = b.ledger->unread();
  REQUIRE(unread.size() == 1);
  CHECK(unread[0].first_id == 10);
  CHECK(unread[0].end_id == std::optional<std::uint64_t>(20));
  CHECK(b.ledger->totals().not_read == 10);
  CHECK(b.transport->starts.size() == 2);
}

TEST_CASE("engine: a stop on a long input reads no further: the unread topics are one range, not a record each",
          "[engine][stop]") {
  constexpr std::uint64_t kLength = 1000000;
  // A source that counts how far it was read, and says how long it is only when asked to.
  class Long final : public cbm::TopicSource {
   public:
    explicit Long(std::optional<std::uint64_t> total) : total_(total) {}
    std::optional<cbm::TopicLine> next() override {
      if (n_ == kLength) return std::nullopt;
      return cbm::TopicLine{n_, "topic " + std::to_string(n_++), {}};
    }
    bool unread_as_range() const override { return true; }
    std::optional<std::uint64_t> known_total() const override { return total_; }
    std::uint64_t read() const { return n_; }

   private:
    std::optional<std::uint64_t> total_;
    std::uint64_t n_ = 0;
  };
  const bool size_known = GENERATE(true, false);
  INFO("input size known: " << size_known);
  Bench b([](const cbm::Task&) { return Step{1s, ok()}; }, 2, [](cbm::RunConfig& c) { c.batch_size = 3; });
  b.transport->events.emplace(b.clock.now() + 1500ms, [&] { b.control.on_stop_signal(15); });
  Long source(size_known ? std::optional<std::uint64_t>(kLength) : std::nullopt);
  b.ledger->begin_round(1);
  b.engine->run_round(1, source);
  // Read: the first two (run), their two successors (started at 1 s), and a read-ahead of 3.
  CHECK(source.read() == 7);
  CHECK(b.records.by_id.size() == 7);
  for (std::uint64_t id = 0; id < 4; ++id) CHECK(b.records.of(id).status == TaskStatus::succeeded);
  for (std::uint64_t id = 4; id < 7; ++id) CHECK(b.records.of(id).status == TaskStatus::cancelled);
  const auto unread = b.ledger->unread();
  REQUIRE(unread.size() == 1);
  CHECK(unread[0].round == 1);
  CHECK(unread[0].first_id == 7);
  const auto totals = b.ledger->totals();
  CHECK(totals.total == 7);
  CHECK(totals.cancelled == 3);
  if (size_known) {
    CHECK(unread[0].end_id == std::optional<std::uint64_t>(kLength));
    CHECK(totals.not_read == kLength - 7);
    CHECK_FALSE(totals.not_read_unknown);
  } else {
    CHECK_FALSE(unread[0].end_id);
    CHECK(totals.not_read_unknown);
  }
  CHECK_FALSE(totals.all_succeeded());
}

TEST_CASE("engine: a stop after the whole input was read records no unread range", "[engine][stop]") {
  Bench b([](const cbm::Task&) { return Step{1s, ok()}; });
  b.transport->events.emplace(b.clock.now() + 500ms, [&] { b.control.on_stop_signal(15); });
  b.run(topics(5));  // 2 slots + a read-ahead of 8: all read
  CHECK(b.records.by_id.size() == 5);
  CHECK(b.ledger->unread().empty());
  CHECK(b.ledger->totals().not_read == 0);
}

TEST_CASE("engine: the service's queue is read out on a stop, each of its topics cancelled", "[engine][stop]") {
  // An open source's topics belong to requests waiting for each record: no range for them.
  class Queue final : public cbm::TopicSource {
   public:
    std::optional<cbm::TopicLine> next() override {
      if (n_ == 30) return std::nullopt;
      return cbm::TopicLine{n_, "queued " + std::to_string(n_++), {}};
    }
    bool open() const override { return n_ < 30; }
   private:
    std::uint64_t n_ = 0;
  };
  Bench b([](const cbm::Task&) { return Step{1s, ok()}; });
  b.transport->events.emplace(b.clock.now() + 500ms, [&] { b.control.stop_now(); });
  Queue source;
  b.ledger->begin_round(1);
  b.engine->run_round(1, source);
  CHECK(b.records.by_id.size() == 30);
  CHECK(b.ledger->unread().empty());
}

TEST_CASE("engine: a drain lets running attempts finish and cancels what waits, each once", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{1s, ok()}; });
  b.transport->events.emplace(b.clock.now() + 500ms, [&] { b.control.on_stop_signal(15); });
  b.run(topics(10));
  CHECK(b.records.by_id.size() == 10);
  CHECK(b.records.of(0).status == TaskStatus::succeeded);
  CHECK(b.records.of(1).status == TaskStatus::succeeded);
  for (std::uint64_t id = 2; id < 10; ++id) {
    CHECK(b.records.of(id).status == TaskStatus::cancelled);
    CHECK(b.records.of(id).error->message == "cancelled: the run was stopped before the task started");
  }
  CHECK(b.transport->cancels.empty());
}

TEST_CASE("engine: a second signal ends the running attempts at once, they are cancelled in flight",
          "[engine]") {
  Bench b([](const cbm::Task&) { return Step{1h, ok()}; });
  b.transport->events.emplace(b.clock.now() + 1s, [&] { b.control.on_stop_signal(15); });
  b.transport->events.emplace(b.clock.now() + 2s, [&] { b.control.on_stop_signal(15); });
  const auto began = b.clock.now();
  b.run(topics(4));
  CHECK(b.clock.now() == began + 2s);
  REQUIRE(b.transport->cancels.size() == 2);
  for (std::uint64_t id : {0, 1}) {
    CHECK(b.records.of(id).status == TaskStatus::cancelled);
    CHECK(b.records.of(id).error->message == "cancelled: the run was stopped during the attempt");
  }
  for (std::uint64_t id : {2, 3}) CHECK(b.records.of(id).status == TaskStatus::cancelled);
}

TEST_CASE("engine: the drain grace ends with an immediate stop", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{1h, ok()}; });
  const auto signalled = b.clock.now() + 1s;
  b.transport->events.emplace(signalled, [&] { b.control.on_stop_signal(2); });
  b.run(topics(3));
  CHECK(b.clock.now() == signalled + b.config.drain_grace);
  CHECK(b.records.by_id.size() == 3);
  CHECK(b.records.of(0).error->message == "cancelled: the run was stopped during the attempt");
}

TEST_CASE("engine: a stop while a task waits to retry cancels it before its next attempt", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{10ms, failed(cbm::ErrorClass::retryable)}; },
         1, [](cbm::RunConfig& c) { c.retry.base = 10s; c.retry.cap = 10s; });
  b.transport->events.emplace(b.clock.now() + 20ms, [&] { b.control.on_stop_signal(15); });
  b.run({"waiting"});
  const TaskResult& r = b.records.of(0);
  CHECK(r.status == TaskStatus::cancelled);
  CHECK_THAT(r.error->message, Catch::StartsWith("cancelled: the run was stopped before the task's next attempt"));
  CHECK(r.attempts == 1);
}

TEST_CASE("engine: --delay holds a slot between its tasks", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{100ms, ok()}; }, 1, [](cbm::RunConfig& c) { c.delay = 2s; });
  b.run(topics(3));
  const auto& s = b.transport->starts;
  REQUIRE(s.size() == 3);
  CHECK(s[1].at - s[0].at == 2100ms);
  CHECK(s[2].at - s[1].at == 2100ms);
}

TEST_CASE("engine: --rpm paces attempt starts from the first one", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{10ms, ok()}; }, 4,
         [](cbm::RunConfig& c) { c.rate.requests_per_minute = 60; c.pipeline.search = false; });
  b.run(topics(5));
  const auto& s = b.transport->starts;
  REQUIRE(s.size() == 5);
  for (std::size_t i = 1; i < s.size(); ++i) CHECK(s[i].at - s[i - 1].at >= 990ms);
}

TEST_CASE("engine: topics finished before a --resume are skipped, and counted in the round", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{10ms, ok()}; });
  TaskResult done;
  done.id = 1;
  done.round = 1;
  done.topic = "topic 1";
  done.status = TaskStatus::succeeded;
  b.ledger->restore(done);
  CHECK(b.run(topics(3)) == 3);
  for (const auto& s : b.transport->starts) CHECK(s.task != 1);
  CHECK(b.transport->starts.size() == 2);
}

TEST_CASE("engine: a source that throws mid-run aborts it with a record for every topic read", "[engine]") {
  class Breaking final : public cbm::TopicSource {
   public:
    std::optional<cbm::TopicLine> next() override {
      if (n_ == 5) throw std::runtime_error("topic 5 changed under --resume");
      return cbm::TopicLine{n_, "topic " + std::to_string(n_++), {}};
    }

   private:
    std::uint64_t n_ = 0;
  };
  Bench b([](const cbm::Task&) { return Step{1s, ok()}; }, 2, [](cbm::RunConfig& c) { c.batch_size = 1; });
  Breaking source;
  b.ledger->begin_round(1);
  b.engine->run_round(1, source);
  REQUIRE(b.ledger->abort_reason());
  CHECK_THAT(*b.ledger->abort_reason(), Catch::Contains("topic 5 changed"));
  CHECK(b.records.by_id.size() == 5);  // each topic read got exactly one record
  CHECK(b.records.of(0).status == TaskStatus::succeeded);
  CHECK(b.records.of(4).status == TaskStatus::cancelled);  // read, not started when the source broke
  CHECK_THAT(b.records.of(4).error->message, Catch::StartsWith("cancelled: the run was aborted"));
}

TEST_CASE("engine: every task of a monitor's rounds ends once, round after round", "[engine]") {
  Bench b([](const cbm::Task& t) {
    return Step{10ms, t.id % 3 == 0 && t.attempt == 1 ? failed(cbm::ErrorClass::retryable) : ok()};
  });
  for (std::uint32_t round = 1; round <= 3; ++round) b.run(topics(7), round);
  const auto totals = b.ledger->totals();
  CHECK(totals.total == 21);
  CHECK(totals.succeeded == 21);
}

namespace {
AttemptOutcome crashed() {
  AttemptOutcome o;
  o.error.emplace();
  o.error->kind = cbm::ErrorKind::crash;
  o.error->message = "worker killed by signal 9 (SIGKILL) during the attempt";
  return o;
}
}  // namespace

TEST_CASE("engine: a task that kills its worker on every attempt fails after its retries", "[engine]") {
  Bench b([](const cbm::Task& t) { return Step{10ms, t.topic == "pill" ? crashed() : ok()}; });
  auto list = topics(40);
  list[20] = "pill";
  b.run(list);
  const TaskResult& pill = b.records.of(20);
  CHECK(pill.status == TaskStatus::failed);
  CHECK(pill.attempts == b.config.retry.max_retries + 1);
}

TEST_CASE("engine: crashes that hit every task alike are not charged to the one they hit", "[engine]") {
  // Every 4th attempt's worker dies, whatever it runs; one unlucky task is hit three times running.
  int n = 0;
  Bench b([&n](const cbm::Task& t) {
    if (t.topic == "unlucky") return Step{10ms, t.attempt <= 3 ? crashed() : ok()};
    return Step{10ms, ++n % 4 == 0 ? crashed() : ok()};
  });
  auto list = topics(200);
  list[150] = "unlucky";
  b.run(list);
  CHECK(b.records.of(150).status == TaskStatus::succeeded);
  CHECK(b.records.of(150).attempts == 4);
  CHECK(b.ledger->totals().succeeded == 200);
}

TEST_CASE("engine: the service's drain runs what it accepted, within the grace", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{1s, ok()}; }, 2, {}, cbm::DrainPolicy::accepted);
  b.transport->events.emplace(b.clock.now() + 500ms, [&] { b.control.on_stop_signal(15); });
  b.run(topics(6));
  CHECK(b.ledger->totals().succeeded == 6);
  CHECK(b.transport->cancels.empty());
}

TEST_CASE("engine: the service's drain grace still ends with an immediate stop", "[engine]") {
  Bench b([](const cbm::Task&) { return Step{3s, ok()}; }, 2, {}, cbm::DrainPolicy::accepted);
  b.transport->events.emplace(b.clock.now() + 500ms, [&] { b.control.on_stop_signal(15); });
  b.run(topics(6));  // 3 waves of 3 s do not fit in the 5 s grace: the third is cancelled
  const auto totals = b.ledger->totals();
  CHECK(totals.succeeded == 2);
  CHECK(totals.cancelled == 4);
  CHECK(totals.total == 6);
}

TEST_CASE("engine: a usage cap pauses every task until its reset, then they go on, the wait not charged",
          "[engine][quota]") {
  ManualClock* clock = nullptr;
  std::optional<cbm::WallClock::time_point> reset;
  Bench b(
      [&](const cbm::Task& t) {
        if (t.topic == "topic 0" && t.attempt == 1) {
          reset = clock->wall_now() + 10ms + 60s;  // the answer comes 10 ms from now
          return Step{10ms, quota(reset)};
        }
        return Step{1s, ok()};
      },
      2, [](cbm::RunConfig& c) { c.retry.max_retries = 0; });
  clock = &b.clock;
  PauseLog pauses;
  b.observers.add(pauses);
  const auto began = b.clock.now();
  b.run(topics(5));

  // The reset plus the one-second margin, on the engine's clock.
  const auto resume = began + 10ms + 60s + 1s;
  const auto& s = b.transport->starts;
  REQUIRE(s.size() == 6);
  CHECK(s[0].at == began);
  CHECK(s[1].at == began);  // topic 1: in flight when the cap came, it went on
  for (std::size_t i = 2; i < s.size(); ++i) {
    INFO("start " << i << " of task " << s[i].task);
    CHECK(s[i].at >= resume);
  }
  const TaskResult& r = b.records.of(0);
  CHECK(r.status == TaskStatus::succeeded);  // --max-retries 0: the wait was not an attempt's failure
  CHECK(r.attempts == 2);
  for (std::uint64_t id = 1; id < 5; ++id) CHECK(b.records.of(id).status == TaskStatus::succeeded);
  REQUIRE(pauses.calls.size() == 2);
  CHECK(pauses.calls[0] == *reset + 1s);
  CHECK_FALSE(pauses.calls[1].has_value());
}

TEST_CASE("engine: a later reset lengthens the pause, an earlier one does not shorten it", "[engine][quota]") {
  ManualClock* clock = nullptr;
  Bench b(
      [&](const cbm::Task& t) {
        if (t.attempt == 1 && t.topic == "topic 0") return Step{10ms, quota(clock->wall_now() + 10ms + 30s)};
        if (t.attempt == 1 && t.topic == "topic 1") return Step{20ms, quota(clock->wall_now() + 20ms + 90s)};
        return Step{1s, ok()};
      });
  clock = &b.clock;
  const auto began = b.clock.now();
  b.run(topics(3));
  for (const auto& start : b.transport->starts) {
    if (start.at > began) CHECK(start.at >= began + 20ms + 90s + 1s);
  }
  CHECK(b.records.of(2).status == TaskStatus::succeeded);
}

TEST_CASE("engine: --on-quota stop aborts the run at a usage cap, naming the code and --resume",
          "[engine][quota]") {
  ManualClock* clock = nullptr;
  Bench b(
      [&](const cbm::Task& t) {
        return t.topic == "topic 0" ? Step{10ms, quota(clock->wall_now() + 1h)} : Step{1s, ok()};
      },
      2, [](cbm::RunConfig& c) { c.on_quota = cbm::QuotaAction::stop; });
  clock = &b.clock;
  b.run(topics(6));
  REQUIRE(b.ledger->abort_reason());
  CHECK_THAT(*b.ledger->abort_reason(), Catch::Contains("code 1308") && Catch::Contains("--resume"));
  // Every task cancelled, the capped one included: a --resume runs them all again.
  for (std::uint64_t id = 0; id < 6; ++id) CHECK(b.records.of(id).status == TaskStatus::cancelled);
  CHECK(b.transport->starts.size() == 2);
}

TEST_CASE("engine: a usage cap without a reset time is retried with backoff within --max-retries",
          "[engine][quota]") {
  Bench b([](const cbm::Task&) { return Step{10ms, quota(std::nullopt)}; });
  PauseLog pauses;
  b.observers.add(pauses);
  b.run({"capped"});
  const TaskResult& r = b.records.of(0);
  CHECK(r.status == TaskStatus::failed);
  CHECK(r.attempts == b.config.retry.max_retries + 1);
  CHECK(pauses.calls.empty());
  const auto& s = b.transport->starts;
  CHECK(s.back().at <= s.front().at + 30ms + b.config.retry.base + 2 * b.config.retry.base);
}

TEST_CASE("engine: a server that keeps answering with a usage cap cannot hold a task forever",
          "[engine][quota]") {
  ManualClock* clock = nullptr;
  Bench b([&](const cbm::Task&) { return Step{10ms, quota(clock->wall_now() + 10ms + 5s)}; }, 1,
          [](cbm::RunConfig& c) { c.retry.max_retries = 0; });
  clock = &b.clock;
  b.run({"always capped"});
  const TaskResult& r = b.records.of(0);
  CHECK(r.status == TaskStatus::failed);
  CHECK(r.error->code == "1308");
  CHECK(r.attempts == 6);  // five waits for a reset, then the one charged attempt --max-retries 0 allows
}

TEST_CASE("engine: an incomplete analysis fails the task with its partial text, accept_incomplete keeps it",
          "[engine]") {
  const auto incomplete = [](const cbm::Task&) {
    AttemptOutcome o;
    o.analysis = "the first half";
    cbm::StepRecord step;
    step.name = "analysis";
    step.model = "m";
    step.finish_reason = "length";
    step.output = "the first half";
    o.steps.push_back(step);
    o.error.emplace();
    o.error->kind = cbm::ErrorKind::incomplete;
    o.error->error_class = cbm::ErrorClass::task_fatal;
    o.error->message = "analysis step: finish_reason length";
    return Step{10ms, o};
  };
  SECTION("by default") {
    Bench b(incomplete);
    b.run({"long"});
    const TaskResult& r = b.records.of(0);
    CHECK(r.status == TaskStatus::failed);
    CHECK(r.attempts == 1);
    CHECK(r.analysis == "the first half");
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].finish_reason == "length");
    CHECK(r.error->kind == cbm::ErrorKind::incomplete);
  }
  SECTION("accepted") {
    Bench b(incomplete, 2, [](cbm::RunConfig& c) { c.accept_incomplete = true; });
    b.run({"long"});
    const TaskResult& r = b.records.of(0);
    CHECK(r.status == TaskStatus::succeeded);
    CHECK(r.analysis == "the first half");
    CHECK(r.steps.at(0).finish_reason == "length");
  }
}

TEST_CASE("the status line says until when a usage cap pauses the run, in local time", "[engine][quota]") {
  Bench b([](const cbm::Task&) { return Step{10ms, ok()}; });
  const char* old_tz = std::getenv("TZ");
  const std::string saved = old_tz != nullptr ? old_tz : "";
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  using namespace std::chrono;
  const cbm::WallClock::time_point until = sys_days(year(2026) / May / 25) + 11h + 22min + 49s;
  CHECK(cbm::local_time_of_day(until) == "11:22");
  cbm::ExecutorGauges g;
  CHECK_THAT(b.progress->line(g), !Catch::Contains("paused"));
  g.paused_until = until;
  CHECK_THAT(b.progress->line(g), Catch::EndsWith(", paused until 11:22 (usage cap)"));
  if (old_tz != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

// An answer that used `tokens` prompt tokens (and nothing else) in its analysis step.
AttemptOutcome ok_using(std::int64_t tokens) {
  AttemptOutcome o = ok();
  cbm::StepRecord step;
  step.name = "analysis";
  step.model = "glm-4.5-air";
  step.response_id = "r";
  step.usage.prompt_tokens = tokens;
  step.usage.total_tokens = tokens;
  o.steps.push_back(step);
  return o;
}

TEST_CASE("engine: a reached --max-tokens-total starts nothing new, lets the wave in flight finish, aborts",
          "[engine][budget]") {
  Bench b([](const cbm::Task&) { return Step{1s, ok_using(100)}; }, 2,
          [](cbm::RunConfig& c) { c.budget.max_tokens = 250; });
  b.run(topics(10));
  // Two waves of two (400 tokens) cross 250 at the second wave's end; nothing starts after.
  REQUIRE(b.transport->starts.size() == 4);
  CHECK(b.transport->cancels.empty());  // in-flight attempts were not cut
  REQUIRE(b.ledger->abort_reason());
  CHECK_THAT(*b.ledger->abort_reason(), Catch::StartsWith("budget: ") && Catch::Contains("--resume"));
  for (std::uint64_t id = 0; id < 4; ++id) CHECK(b.records.of(id).status == TaskStatus::succeeded);
  for (std::uint64_t id = 4; id < 10; ++id) CHECK(b.records.of(id).status == TaskStatus::cancelled);
}

TEST_CASE("engine: a daily budget pauses dispatch until local midnight, then starts over", "[engine][budget]") {
  Bench b([](const cbm::Task&) { return Step{1s, ok_using(100)}; }, 1, [](cbm::RunConfig& c) {
    c.budget.max_tokens = 200;
    c.budget.period = cbm::BudgetPeriod::day;
  });
  PauseLog pauses;
  b.observers.add(pauses);
  const auto began = b.clock.now();
  const auto midnight = cbm::next_local_midnight(b.clock.wall_now());
  const auto midnight_steady = began + std::chrono::duration_cast<Clock::duration>(midnight - b.clock.wall_now());
  b.run(topics(5));
  const auto& s = b.transport->starts;
  REQUIRE(s.size() == 5);
  CHECK(s[1].at < midnight_steady);
  CHECK(s[2].at >= midnight_steady);  // 200 tokens spent: the third waits for the new day
  CHECK(s[3].at < midnight_steady + 1h);
  CHECK_FALSE(b.ledger->abort_reason());
  for (std::uint64_t id = 0; id < 5; ++id) CHECK(b.records.of(id).status == TaskStatus::succeeded);
  REQUIRE(pauses.calls.size() >= 2);
  CHECK(pauses.calls[0] == midnight);
  CHECK_FALSE(pauses.calls[1].has_value());
}

TEST_CASE("engine: a budget crossed by the last attempts in flight does not abort a run with nothing left to start",
          "[engine][budget]") {
  // Two at once, 100 tokens each, 150 allowed. Topic 0 ends at 1 s (100 spent), topic 2 starts and
  // ends at 2 s (200: past the budget) while topic 1 runs until 3 s, and nothing is left to start.
  Bench b([](const cbm::Task& t) { return Step{t.id == 1 ? 3s : 1s, ok_using(100)}; }, 2,
          [](cbm::RunConfig& c) { c.budget.max_tokens = 150; });
  b.run(topics(3));
  CHECK(b.transport->starts.size() == 3);
  CHECK_FALSE(b.ledger->abort_reason());
  for (std::uint64_t id = 0; id < 3; ++id) CHECK(b.records.of(id).status == TaskStatus::succeeded);
}

namespace {

// A shared limit of `capacity` leases held by this engine and, pretend, other processes (`others`),
// renewed through maintain() every `renew_every`; a lease not renewed within `ttl` is lost.
class CountingAdmission final : public cbm::SharedAdmission {
 public:
  explicit CountingAdmission(std::size_t capacity) : capacity_(capacity) {}

  void bind_log(cbm::Logger&) override {}

  std::optional<LeaseId> try_acquire(Clock::time_point now, const cbm::RateLimit::Reservation&) override {
    ++asked;
    if (held_.size() + others >= capacity_) return std::nullopt;
    const LeaseId id = next_id_++;
    held_[id] = now + kTtl;
    if (held_.size() == 1) renew_due_ = now + kRenewEvery;
    peak = std::max(peak, held_.size() + others);
    return id;
  }
  Clock::time_point retry_at(Clock::time_point now) const override { return now + kRetry; }
  void cancel(LeaseId lease, Clock::time_point) override { held_.erase(lease); }
  void release(LeaseId lease, const AttemptOutcome&, Clock::time_point) override {
    ++released;
    held_.erase(lease);
  }
  Clock::time_point maintain(Clock::time_point now) override {
    for (const auto& [id, expiry] : held_) {
      if (expiry <= now) ++lost;  // a lease left to expire while its attempt ran
    }
    if (held_.empty()) return Clock::time_point::max();
    if (now >= renew_due_) {
      ++renewals;
      for (auto& [id, expiry] : held_) expiry = now + kTtl;
      renew_due_ = now + kRenewEvery;
    }
    return renew_due_;
  }
  std::size_t held() const { return held_.size(); }

  static constexpr Clock::duration kTtl = 3s;
  static constexpr Clock::duration kRenewEvery = 1s;
  static constexpr Clock::duration kRetry = 50ms;
  std::size_t others = 0;
  std::size_t peak = 0;
  int asked = 0;
  int released = 0;
  int renewals = 0;
  int lost = 0;

 private:
  const std::size_t capacity_;
  std::map<LeaseId, Clock::time_point> held_;
  LeaseId next_id_ = 1;
  Clock::time_point renew_due_{};
};

}  // namespace

TEST_CASE("engine: with a shared limit every attempt holds a lease, renewed while it runs, given back once",
          "[engine][shared]") {
  auto shared = std::make_shared<CountingAdmission>(3);
  shared->others = 1;  // another process holds one of the three
  // Attempts of 10 s: each outlives several lease lifetimes, so only renewals keep the leases alive.
  Bench b([](const cbm::Task&) { return Step{10s, ok()}; }, 8, [&](cbm::RunConfig& c) {
    c.timeout = 60s;
    c.shared_admission = shared;
  });
  b.run(topics(6));
  for (std::uint64_t id = 0; id < 6; ++id) CHECK(b.records.of(id).status == TaskStatus::succeeded);
  CHECK(shared->peak == 3);        // the local slots (8) never outran the shared limit (3), and used it
  CHECK(shared->released == 6);    // every lease back, once
  CHECK(shared->held() == 0);
  CHECK(shared->renewals >= 9 * 3);  // 3 waves of 10 s, renewed every second
  CHECK(shared->lost == 0);
}

TEST_CASE("engine: a shared limit that refuses holds dispatch back and is asked again later, not in a spin",
          "[engine][shared]") {
  auto shared = std::make_shared<CountingAdmission>(1);
  shared->others = 1;  // full: another process holds the only lease
  Bench b([](const cbm::Task&) { return Step{100ms, ok()}; }, 4,
          [&](cbm::RunConfig& c) { c.shared_admission = shared; });
  ScriptedTransport* transport = b.transport;
  const auto start = b.clock.now();
  // The other process lets go of its lease after 1 s.
  transport->events.emplace(start + 1s, [&] { shared->others = 0; });
  b.run(topics(2));
  REQUIRE(transport->starts.size() == 2);
  CHECK(transport->starts[0].at >= start + 1s);
  CHECK(transport->starts[1].at >= transport->starts[0].at + 100ms);  // one lease: one at a time
  // Asked about once per retry interval while refused, not on every turn of the loop.
  CHECK(shared->asked <= 2 * (1s / CountingAdmission::kRetry) + 10);
  CHECK(shared->asked >= (1s / CountingAdmission::kRetry) / 2);
}
