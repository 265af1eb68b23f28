// The journal's writer thread: order, backpressure, compaction, and a write that fails half-way.
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <csignal>
#include <string>
#include <vector>

#include "journal.hpp"
#include "result_codec.hpp"
#include "subprocess.hpp"

namespace {

cbm::TaskResult record(std::uint64_t id, std::uint32_t round = 1) {
  cbm::TaskResult r;
  r.id = id;
  r.round = round;
  r.topic = "topic " + std::to_string(id);
  r.status = cbm::TaskStatus::succeeded;
  r.analysis = std::string(1000, 'a');
  r.attempts = 1;
  return r;
}

cbm::JournalSettings settings() {
  cbm::JournalSettings s;
  s.chat_model = "glm-4.5-air";
  s.tool_model = "glm-4.5-air";
  s.prompts_digest = "0123456789abcdef";
  return s;
}

// Every record line, decoded (a line that is not a record fails the test).
std::vector<cbm::TaskResult> records_of(const cbm::Journal& journal) {
  std::vector<cbm::TaskResult> out;
  journal.for_each_record([&](std::string_view line) {
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    REQUIRE_FALSE(d.HasParseError());
    auto r = cbm::decode_task_result(d);
    REQUIRE(r.ok());
    out.push_back(std::move(r.value()));
  });
  return out;
}

std::size_t lines_in(const std::filesystem::path& p) {
  const std::string text = cbm::test::read_text(p);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("the journal's writer appends every record, in the order queued, when more come than its queue holds",
          "[journal]") {
  cbm::test::TempDir dir;
  auto journal = cbm::Journal::create(dir / "j.jsonl", settings());
  const std::uint64_t n = 3 * cbm::Journal::kMaxQueued + 17;  // append() must wait for room, not drop
  for (std::uint64_t id = 0; id < n; ++id) journal.append(record(id));
  journal.sync();

  CHECK(lines_in(dir / "j.jsonl") == n + 1);  // and the header
  const auto back = records_of(journal);
  REQUIRE(back.size() == n);
  for (std::uint64_t id = 0; id < n; ++id) CHECK(back[id].id == id);
  CHECK_FALSE(journal.failure());
}

TEST_CASE("a journal destroyed with records queued writes them first", "[journal]") {
  cbm::test::TempDir dir;
  const std::uint64_t n = 1000;
  {
    auto journal = cbm::Journal::create(dir / "j.jsonl", settings());
    for (std::uint64_t id = 0; id < n; ++id) journal.append(record(id));
  }  // no sync(): a library run with a journal and no report ends like this
  CHECK(lines_in(dir / "j.jsonl") == n + 1);
  const auto reopened = cbm::Journal::open_for_resume(dir / "j.jsonl", settings(), false, [](const cbm::TaskResult&) {});
  CHECK(records_of(reopened).size() == n);
}

TEST_CASE("a stop during --resume's read of the journal ends it at once and leaves the journal unchanged",
          "[journal]") {
  cbm::test::TempDir dir;
  const std::uint64_t n = 1000;
  {
    auto journal = cbm::Journal::create(dir / "j.jsonl", settings());
    for (std::uint64_t id = 0; id < n; ++id) journal.append(record(id));
  }
  const std::string before = cbm::test::read_text(dir / "j.jsonl");
  std::uint64_t read = 0;
  int asked = 0;
  CHECK_THROWS_AS(cbm::Journal::open_for_resume(
                      dir / "j.jsonl", settings(), false, [&](const cbm::TaskResult&) { ++read; },
                      [&] { return ++asked > 10; }),  // a stop after the tenth record
                  cbm::JournalReadStopped);
  CHECK(read == 10);  // asked before each line: nothing read after the stop
  CHECK(cbm::test::read_text(dir / "j.jsonl") == before);
  const auto reopened = cbm::Journal::open_for_resume(dir / "j.jsonl", settings(), false, [](const cbm::TaskResult&) {});
  CHECK(records_of(reopened).size() == n);
}

TEST_CASE("compaction writes what is queued first, then keeps only the later rounds", "[journal]") {
  cbm::test::TempDir dir;
  auto journal = cbm::Journal::create(dir / "j.jsonl", settings());
  for (std::uint32_t round = 1; round <= 3; ++round) {
    for (std::uint64_t id = 0; id < 100; ++id) journal.append(record(id, round));
  }
  journal.compact(3);  // no sync() before: compact must take the queued records into account
  journal.append(record(100, 3));
  journal.sync();

  const auto back = records_of(journal);
  REQUIRE(back.size() == 101);
  for (const auto& r : back) CHECK(r.round == 3);
  CHECK(back.back().id == 100);
}

// RLIMIT_FSIZE makes a write stop part-way (short write, then EFBIG), as a full disk does.
TEST_CASE("a write that fails part-way stops the journal at whole lines, and failure() says why", "[journal]") {
  cbm::test::TempDir dir;
  auto journal = cbm::Journal::create(dir / "j.jsonl", settings());
  const auto header_size = std::filesystem::file_size(dir / "j.jsonl");

  std::signal(SIGXFSZ, SIG_IGN);  // else the oversized write kills the process
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
  rlimit small = old;
  small.rlim_cur = header_size + 50'000;  // room for some 40 records, the last one cut
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  for (std::uint64_t id = 0; id < 1000; ++id) journal.append(record(id));
  journal.sync();
  const auto failure = journal.failure();
  const auto back = records_of(journal);
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &old) == 0);
  std::signal(SIGXFSZ, SIG_DFL);

  REQUIRE(failure);
  CHECK(failure->find("cannot append to journal") != std::string::npos);
  CHECK(std::filesystem::file_size(dir / "j.jsonl") == header_size + 50'000);  // it did write up to the limit
  REQUIRE(!back.empty());
  CHECK(back.size() < 1000);
  for (std::size_t i = 0; i < back.size(); ++i) CHECK(back[i].id == i);  // whole records, in order, no gap

  journal.append(record(5000));  // refused from now on: the file keeps ending where it failed
  journal.sync();
  CHECK(records_of(journal).size() == back.size());
}

TEST_CASE("a stop's unread topics are one journal line: compaction keeps it by round, --resume drops it",
          "[journal][stop]") {
  cbm::test::TempDir dir;
  const auto path = dir / "j.jsonl";
  {
    auto journal = cbm::Journal::create(path, settings());
    journal.append(record(0, 1));
    journal.append(cbm::UnreadTopics{1, 5, std::nullopt});
    journal.append(record(0, 2));
    journal.append(cbm::UnreadTopics{2, 1, 1000000});
    journal.compact(2);  // round 1's record and range go, round 2's stay
    journal.sync();
    std::vector<std::string> lines;
    journal.for_each_record([&](std::string_view line) { lines.emplace_back(line); });
    REQUIRE(lines.size() == 2);
    const auto entry = cbm::unread_entry_of_journal_line(lines[1]);
    REQUIRE(entry);
    const auto unread = cbm::decode_unread_topics(*entry);
    REQUIRE(unread.ok());
    CHECK(unread.value().round == 2);
    CHECK(unread.value().first_id == 1);
    CHECK(unread.value().count() == std::optional<std::uint64_t>(999999));
    CHECK_FALSE(cbm::unread_entry_of_journal_line(lines[0]));  // a result line is not one
  }
  std::vector<std::uint64_t> restored;
  auto resumed = cbm::Journal::open_for_resume(path, settings(), false,
                                               [&](const cbm::TaskResult& r) { restored.push_back(r.id); });
  CHECK(restored == std::vector<std::uint64_t>{0});
  CHECK(lines_in(path) == 2);  // the header and the record: the unread topics run again
}

TEST_CASE("a resume with other model or search settings is refused naming each, an old header reads as defaults",
          "[journal][resume]") {
  cbm::test::TempDir dir;
  const auto path = dir / "j.jsonl";
  // A header from before the model and search settings were recorded.
  cbm::test::write_text(path, "{\"journal\":\"concurrent_bigmodel journal\",\"version\":1,\"chat_model\":\"glm-4.5-air\","
                              "\"tool_model\":\"glm-4.5-air\",\"search\":true,\"prompts_digest\":\"0123456789abcdef\"}\n");
  { cbm::Journal::open_for_resume(path, settings(), false, [](const cbm::TaskResult&) {}); }  // defaults: same

  cbm::JournalSettings other = settings();
  other.model.temperature = 0.2;
  other.search_settings.count = 10;
  other.api_flavor = cbm::ApiFlavor::openai;
  try {
    cbm::Journal::open_for_resume(path, other, false, [](const cbm::TaskResult&) {});
    FAIL("a resume with other settings was accepted");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("--temperature: 0.6 in the journal, 0.2 now"));
    CHECK_THAT(what, Catch::Contains("--search-count: 5 in the journal, 10 now"));
    CHECK_THAT(what, Catch::Contains("--api-flavor: bigmodel in the journal, openai now"));
    CHECK_THAT(what, !Catch::Contains("--chat-model"));
    CHECK_THAT(what, Catch::Contains("--force-resume"));
  }
  { cbm::Journal::open_for_resume(path, other, true, [](const cbm::TaskResult&) {}); }  // forced
  // The header is now this run's: resuming with the same settings again is accepted as is.
  { cbm::Journal::open_for_resume(path, other, false, [](const cbm::TaskResult&) {}); }
}
