// --resume: what the journal restored is skipped, and an input changed since is refused.
#include <catch2/catch.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "duplicate_topics.hpp"
#include "run_ledger.hpp"
#include "terminal_record.hpp"

TEST_CASE("restored records count, their tasks are done, and a record for one is refused",
          "[resume][ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  ledger.restore(cbm::test::terminal_record(1, "batteries"));
  ledger.restore(cbm::test::terminal_record(1, "batteries"));  // a journal line read twice counts once

  CHECK(ledger.totals().total == 1);
  CHECK(ledger.has(1, 1));
  CHECK_FALSE(ledger.has(1, 0));
  ledger.begin_round(1);
  CHECK_FALSE(ledger.record(cbm::test::terminal_record(1, "batteries")));
  CHECK(ledger.record(cbm::test::terminal_record(0, "fusion")));
}

TEST_CASE("a topic that is not the one restored at its position is detected", "[resume][ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  ledger.restore(cbm::test::terminal_record(1, "batteries"));

  CHECK(ledger.restored_topic_matches(1, 1, cbm::topic_hash("batteries")));
  CHECK_FALSE(ledger.restored_topic_matches(1, 1, cbm::topic_hash("reactors")));
  CHECK(ledger.restored_topic_matches(1, 0, cbm::topic_hash("anything")));  // nothing restored there
  CHECK(ledger.restored_topic_matches(2, 1, cbm::topic_hash("anything")));

  // The rerun reads its input: the changed one is refused before anything runs.
  const auto changed =
      std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"fusion", "reactors"});
  auto source = cbm::topics_from_list(changed);
  cbm::DedupingSource deduped(*source, ledger, 1, {});
  CHECK(deduped.next()->id == 0);
  CHECK_THROWS_AS(deduped.next(), std::runtime_error);
}

TEST_CASE("a round's restored topics are forgotten when it ends", "[resume][ledger]") {
  cbm::RunConfig config;
  cbm::RunLedger ledger(config);
  ledger.restore(cbm::test::terminal_record(1, "batteries"));
  ledger.begin_round(1);
  ledger.end_round(1, 2);
  CHECK(ledger.restored_topic_matches(1, 1, cbm::topic_hash("reactors")));
}
