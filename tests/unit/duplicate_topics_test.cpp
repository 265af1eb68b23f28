// Repeated topics: analysed once, reported for each occurrence with a copy of the first one's record.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "duplicate_topics.hpp"
#include "run_ledger.hpp"
#include "terminal_record.hpp"

namespace {

struct Recorder : cbm::RunObserver {
  std::vector<cbm::TaskResult> records;
  void task_finished(const cbm::TaskResult& r) override { records.push_back(r); }
};

// Ids the source yields, read to its end.
std::vector<std::uint64_t> yielded(cbm::TopicSource& source) {
  std::vector<std::uint64_t> ids;
  while (auto t = source.next()) ids.push_back(t->id);
  return ids;
}

}  // namespace

TEST_CASE("a repeated topic runs once, its later occurrences get copies, also when it ends after them",
          "[duplicates][ledger]") {
  const auto topics = std::make_shared<const std::vector<std::string>>(
      std::vector<std::string>{"fusion", "batteries", "fusion", "fusion"});
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  Recorder observer;
  ledger.observe(observer);
  ledger.begin_round(1);
  cbm::RoundSurvey survey = cbm::survey_round(*cbm::topics_from_list(topics));
  CHECK(survey.topics == 4);
  auto source = cbm::topics_from_list(topics);
  cbm::DedupingSource deduped(*source, ledger, 1, std::move(survey));

  // The whole input is read before "fusion" ends: both copies wait for it.
  CHECK(yielded(deduped) == std::vector<std::uint64_t>{0, 1});
  CHECK(deduped.consumed() == 4);
  CHECK_FALSE(ledger.has(1, 2));

  cbm::TaskResult original = cbm::test::terminal_record(0, "fusion");
  original.attempts = 2;
  original.usage.total_tokens = 100;
  original.execution_time = std::chrono::milliseconds(1500);
  ledger.record(original);
  CHECK(ledger.has(1, 2));
  CHECK(ledger.has(1, 3));
  CHECK(ledger.holds_result(1, 0));
  // A later occurrence registered after the original ended is copied at once.
  ledger.record_duplicate(1, 4, 0);
  CHECK(ledger.has(1, 4));

  REQUIRE(observer.records.size() == 4);
  CHECK(observer.records[0].id == 0);  // the original before its copies
  for (std::size_t i = 1; i < observer.records.size(); ++i) {
    const cbm::TaskResult& copy = observer.records[i];
    CHECK(copy.duplicate_of == 0u);
    CHECK(copy.analysis == "analysis of fusion");
    CHECK(copy.attempts == 0);  // a copy cost no API work
  }
  // The copies count as tasks, but add no attempts, tokens or time.
  const cbm::RunTotals t = ledger.totals();
  CHECK(t.total == 4);
  CHECK(t.attempts == 2);
  CHECK(t.usage.total_tokens == 100);
  CHECK(t.execution_time_sum == std::chrono::milliseconds(1500));
}

TEST_CASE("a duplicate already recorded is not copied again", "[duplicates][ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  ledger.begin_round(1);
  ledger.expect_duplicates(1, 0);
  cbm::TaskResult restored = cbm::test::terminal_record(1, "fusion");
  restored.duplicate_of = 0;
  ledger.restore(restored);
  ledger.record_duplicate(1, 1, 0);
  ledger.record(cbm::test::terminal_record(0, "fusion"));
  CHECK(ledger.totals().total == 2);
}

TEST_CASE("duplicates are forgotten at the round's end", "[duplicates][ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  ledger.begin_round(1);
  ledger.expect_duplicates(1, 0);
  ledger.record(cbm::test::terminal_record(0, "fusion"));
  CHECK(ledger.holds_result(1, 0));
  ledger.end_round(1, 1);
  CHECK_FALSE(ledger.holds_result(1, 0));
}

TEST_CASE("an input's size is known from its counting pass only when a stop did not cut it short",
          "[duplicates]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  ledger.begin_round(1);
  std::string text = "a\nb\nc\n";
  std::FILE* f = ::fmemopen(text.data(), text.size(), "r");
  REQUIRE(f != nullptr);
  const cbm::InputSpec spec{cbm::InputFormat::text, {}};
  auto stream = cbm::topics_from_stream(f, spec);
  cbm::DedupingSource counted(*stream, ledger, 1, cbm::RoundSurvey{3, {}, true});
  CHECK(counted.known_total() == 3u);
  cbm::DedupingSource cut(*stream, ledger, 1, cbm::RoundSurvey{1, {}, false});
  CHECK_FALSE(cut.known_total().has_value());  // "to the end of the input", not "1 topic"
  std::fclose(f);
}
