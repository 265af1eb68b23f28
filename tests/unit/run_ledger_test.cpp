// The ledger: exactly one record per task, journalled before its observer hears of it, and an observer
// free to call back into the ledger.
#include <catch2/catch.hpp>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "exit_status.hpp"
#include "journal.hpp"
#include "result_codec.hpp"
#include "run_ledger.hpp"
#include "subprocess.hpp"
#include "terminal_record.hpp"

namespace {

cbm::TaskResult finished(std::uint64_t id, std::uint32_t round = 1,
                         cbm::TaskStatus status = cbm::TaskStatus::succeeded) {
  return cbm::test::terminal_record(id, "topic " + std::to_string(id), round, status);
}

// Records what it hears; the ledger's calls never overlap, which `overlapping` would catch.
struct Recorder : cbm::RunObserver {
  std::vector<std::uint64_t> ids;
  std::vector<std::uint32_t> rounds;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapping{false};

  void task_finished(const cbm::TaskResult& r) override {
    if (inside.fetch_add(1) != 0) overlapping = true;
    ids.push_back(r.id);
    inside.fetch_sub(1);
  }
  void round_finished(std::uint32_t round) override { rounds.push_back(round); }
};

// The ids of a journal's records, in file order.
std::vector<std::uint64_t> journal_ids(const std::filesystem::path& path) {
  std::vector<std::uint64_t> ids;
  const std::string text = cbm::test::read_text(path);
  std::size_t start = text.find('\n') + 1;  // after the header
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    rapidjson::Document d;
    d.Parse(text.data() + start, end - start);
    REQUIRE_FALSE(d.HasParseError());
    ids.push_back(d["id"].GetUint64());
    start = end + 1;
  }
  return ids;
}

}  // namespace

TEST_CASE("a second record for the same round and id is refused, and neither counted nor announced",
          "[ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  Recorder observer;
  ledger.observe(observer);
  ledger.begin_round(1);

  REQUIRE(ledger.record(finished(7)));
  CHECK_FALSE(ledger.record(finished(7, 1, cbm::TaskStatus::failed)));
  CHECK(ledger.has(1, 7));
  CHECK_FALSE(ledger.has(2, 7));
  CHECK(ledger.record(finished(7, 2)));  // the same id in another round is another task

  CHECK(ledger.totals().total == 2);
  CHECK(ledger.totals().failed == 0);
  CHECK(observer.ids == std::vector<std::uint64_t>{7, 7});
}

TEST_CASE("an observer may call back into the ledger from task_finished", "[ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  struct Reader : cbm::RunObserver {
    cbm::RunLedger* ledger = nullptr;
    std::vector<std::size_t> totals_seen;
    void task_finished(const cbm::TaskResult& r) override {
      totals_seen.push_back(ledger->totals().total);
      CHECK(ledger->has(r.round, r.id));
      if (r.status == cbm::TaskStatus::failed) ledger->mark_aborted("the observer saw a failure");
    }
  } observer;
  observer.ledger = &ledger;
  ledger.observe(observer);
  ledger.begin_round(1);

  ledger.record(finished(0));
  ledger.record(finished(1, 1, cbm::TaskStatus::failed));

  CHECK(observer.totals_seen == std::vector<std::size_t>{1, 2});
  CHECK(ledger.abort_reason() == "the observer saw a failure");
}

TEST_CASE("records from many threads reach the observer once each, one call at a time, in journal order",
          "[ledger][journal]") {
  cbm::test::TempDir dir;
  const auto path = dir / "j.jsonl";
  cbm::RunConfig config;
  Recorder observer;
  constexpr std::uint64_t kThreads = 4;
  constexpr std::uint64_t kEach = 500;
  {
    cbm::RunLedger ledger(config);
    ledger.attach(cbm::Journal::create(path, cbm::JournalSettings{}));
    ledger.observe(observer);
    ledger.begin_round(1);
    std::vector<std::thread> threads;
    for (std::uint64_t t = 0; t < kThreads; ++t) {
      threads.emplace_back([&ledger, t] {
        // Each task is recorded twice, as an executor racing a cancellation might: one record counts.
        for (std::uint64_t i = 0; i < kEach; ++i) {
          ledger.record(finished(t * kEach + i));
          ledger.record(finished(t * kEach + i, 1, cbm::TaskStatus::cancelled));
        }
      });
    }
    for (auto& t : threads) t.join();
    ledger.end_round(1, kThreads * kEach);
    CHECK(ledger.totals().total == kThreads * kEach);
    CHECK(ledger.totals().cancelled == 0);
  }  // the ledger's journal writes what is queued as the ledger goes

  CHECK_FALSE(observer.overlapping);
  REQUIRE(observer.ids.size() == kThreads * kEach);
  CHECK(observer.ids == journal_ids(path));
  CHECK(observer.rounds == std::vector<std::uint32_t>{1});
}

TEST_CASE("the ledger keeps its journal to its end: what is still queued when it goes is written",
          "[ledger][journal]") {
  cbm::test::TempDir dir;
  const auto path = dir / "j.jsonl";
  cbm::RunConfig config;
  std::vector<std::uint64_t> recorded;
  {
    cbm::RunLedger ledger(config);
    ledger.attach(cbm::Journal::create(path, cbm::JournalSettings{}));
    ledger.begin_round(1);
    for (std::uint64_t id = 0; id < 100; ++id) {
      ledger.record(finished(id));
      recorded.push_back(id);
    }
  }
  CHECK(journal_ids(path) == recorded);
}

TEST_CASE("an observer that throws aborts the run, and the record stays counted and journalled",
          "[ledger][journal]") {
  cbm::test::TempDir dir;
  const auto path = dir / "j.jsonl";
  cbm::RunConfig config;
  struct Thrower : cbm::RunObserver {
    void task_finished(const cbm::TaskResult&) override { throw std::runtime_error("callback broke"); }
  } observer;
  {
    cbm::RunLedger ledger(config);
    ledger.attach(cbm::Journal::create(path, cbm::JournalSettings{}));
    ledger.observe(observer);
    ledger.begin_round(1);
    CHECK(ledger.record(finished(3)));
    CHECK(ledger.has(1, 3));
    CHECK(ledger.abort_reason() == "a result observer failed: callback broke");
  }
  CHECK(journal_ids(path) == std::vector<std::uint64_t>{3});
}

TEST_CASE("the report holds the summary, the run's sections and every journalled record",
          "[ledger][report]") {
  cbm::test::TempDir dir;
  cbm::RunConfig config;
  config.journal = dir / "j.jsonl";
  cbm::RunLedger ledger(config);
  CHECK_THROWS_AS(ledger.write_report(dir / "r.json", 0), std::logic_error);  // no journal: no results

  ledger.attach(cbm::Journal::create(config.journal, cbm::JournalSettings{}));
  ledger.begin_round(1);
  ledger.record(finished(0));
  ledger.record(finished(1, 1, cbm::TaskStatus::failed));
  ledger.end_round(1, 2);
  ledger.write_report(dir / "r.json", cbm::kExitSomeFailed);

  const std::string text = cbm::test::read_text(dir / "r.json");
  rapidjson::Document report;
  report.Parse(text.data(), text.size());
  REQUIRE_FALSE(report.HasParseError());
  CHECK(report["summary"]["total_tasks"].GetUint64() == 2);
  CHECK(report["summary"]["successful_tasks"].GetUint64() == 1);
  CHECK(report["summary"]["iterations_completed"].GetUint64() == 1);
  CHECK(report["summary"]["exit_status"].GetInt() == cbm::kExitSomeFailed);
  CHECK(report["config"]["journal"].GetString() == config.journal.string());
  REQUIRE(report["rounds"].Size() == 1);
  CHECK(report["rounds"][0]["planned_tasks"].GetUint64() == 2);
  REQUIRE(report["results"].Size() == 2);
  CHECK(std::string(report["results"][1]["topic"].GetString()) == "topic 1");
}

TEST_CASE("an unread range counts only its topics without a record (a resume's stop)", "[ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  for (std::uint64_t id = 5; id < 10; ++id) ledger.restore(finished(id));  // an earlier run's
  ledger.begin_round(1);
  ledger.record_unread(cbm::UnreadTopics{1, 3, 12});  // 9 ids, 5 of them finished already
  CHECK(ledger.totals().not_read == 4);
  CHECK(ledger.totals().total == 5);
  REQUIRE(ledger.unread().size() == 1);
  CHECK(ledger.unread().front().recorded == 5);
  CHECK(ledger.unread().front().count() == 4);
}
