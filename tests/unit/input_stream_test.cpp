// The topics input's caps and stops: a text line holds at most its topic's bytes, invalid lines are
// kept for the first kKeptInvalidLines only, a held input has a bound, and InputStream ends its reads
// at a stop (a device that never ends, a FIFO without a writer), refuses a directory and rewinds a
// regular file.
#include "input_stream.hpp"

#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "subprocess.hpp"
#include "topic_source.hpp"

namespace {

struct Read {
  std::vector<cbm::TopicLine> rows;
  std::vector<cbm::InvalidLine> invalid;
  std::uint64_t invalid_count = 0;
  std::uint64_t lines = 0;
};

Read read_text_input(std::string text) {
  std::FILE* f = ::fmemopen(text.data(), text.size(), "r");
  REQUIRE(f != nullptr);
  auto reader = cbm::RowReader::make(f, cbm::InputSpec{});
  Read out;
  while (auto row = reader->next()) out.rows.push_back(std::move(*row));
  out.invalid = reader->take_invalid();
  out.invalid_count = reader->invalid_count();
  out.lines = reader->lines();
  std::fclose(f);
  return out;
}

}  // namespace

TEST_CASE("text: the topic limit counts the trimmed line, whatever whitespace surrounds it", "[input]") {
  const std::string topic(cbm::kMaxTopicBytes, 'x');
  const Read r = read_text_input(std::string(100000, ' ') + topic + std::string(100000, ' ') + "\r\nnext\n");
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].topic == topic);
  CHECK(r.rows[1].topic == "next");
  CHECK(r.invalid.empty());
}

TEST_CASE("text: an over-long line is skipped with its trimmed length, the next line read", "[input]") {
  const Read r = read_text_input("first\n  " + std::string(1000000, 'y') + " z  \nlast\n# " + std::string(9000, 'c') + "\n");
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].topic == "first");
  CHECK(r.rows[1].topic == "last");
  REQUIRE(r.invalid.size() == 1);  // the long comment is a comment
  CHECK(r.invalid[0].line_number == 2);
  CHECK(r.invalid[0].reason == "longer than 4096 bytes (1000002)");
  CHECK(r.lines == 4);
}

TEST_CASE("text: one byte over the limit inside the line is too long", "[input]") {
  const Read r = read_text_input(std::string(cbm::kMaxTopicBytes, 'x') + " y\n");
  CHECK(r.rows.empty());
  REQUIRE(r.invalid.size() == 1);
  CHECK(r.invalid[0].reason == "longer than 4096 bytes (4098)");
}

TEST_CASE("a reader keeps the first 100 invalid lines and counts the rest", "[input]") {
  std::string text;
  for (int i = 0; i < 250; ++i) text += "\xff\n";
  text += "valid\n";
  const Read r = read_text_input(text);
  CHECK(r.rows.size() == 1);
  REQUIRE(r.invalid.size() == cbm::kKeptInvalidLines);
  CHECK(r.invalid.front().line_number == 1);
  CHECK(r.invalid.back().line_number == 100);
  CHECK(r.invalid_count == 250);
}

TEST_CASE("jsonl and csv: a row over kMaxRowBytes is skipped, the reader goes on", "[input]") {
  for (const auto format : {cbm::InputFormat::jsonl, cbm::InputFormat::csv}) {
    const std::string big(3 * cbm::kMaxRowBytes, 'q');
    std::string text = format == cbm::InputFormat::csv ? "topic\n" + big + "\nok\n"
                                                       : "{\"topic\": \"" + big + "\"}\n{\"topic\": \"ok\"}\n";
    std::FILE* f = ::fmemopen(text.data(), text.size(), "r");
    REQUIRE(f != nullptr);
    const auto held = cbm::read_held_input(f, cbm::InputSpec{format, {}});
    std::fclose(f);
    REQUIRE(held.rows.size() == 1);
    CHECK(held.rows[0].topic == "ok");
    REQUIRE(held.invalid.size() == 1);
    CHECK(held.invalid[0].reason == "longer than " + std::to_string(cbm::kMaxRowBytes) + " bytes");
  }
}

TEST_CASE("a held input past its bound stops with an error saying how to stream it", "[input]") {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "topic " + std::to_string(i) + "\n";
  std::FILE* f = ::fmemopen(text.data(), text.size(), "r");
  REQUIRE(f != nullptr);
  try {
    cbm::read_held_input(f, cbm::InputSpec{}, 10 * 1024);
    FAIL("no error past the bound");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(), Catch::Contains("not a regular file") && Catch::Contains("regular file is streamed"));
  }
  std::fclose(f);
}

TEST_CASE("InputStream: a stop ends an endless device's read", "[input]") {
  std::atomic<bool> stop{false};
  cbm::InputStream in("/dev/zero", [&] { return stop.load(); });
  CHECK_FALSE(in.regular());
  char buf[4096];
  for (int i = 0; i < 100; ++i) REQUIRE(std::fread(buf, 1, sizeof buf, in.file()) == sizeof buf);
  CHECK_FALSE(in.stopped());
  stop = true;
  std::size_t more = 0;
  while (std::fread(buf, 1, sizeof buf, in.file()) == sizeof buf) ++more;
  CHECK(more <= cbm::kReadChunk / sizeof buf);  // what was buffered before the stop, no more
  CHECK(in.stopped());
}

TEST_CASE("InputStream: a FIFO without a writer opens at once, waits, and ends at a stop", "[input]") {
  cbm::test::TempDir dir;
  const auto fifo = dir / "topics.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  int asked = 0;
  cbm::InputStream in(fifo.string(), [&] { return ++asked > 5; });  // the open does not block
  CHECK(std::fgetc(in.file()) == EOF);
  CHECK(in.stopped());
  CHECK(asked > 5);  // it waited (polling) rather than taking "no writer" for the end
}

TEST_CASE("InputStream: a directory is refused, a regular file rewinds", "[input]") {
  cbm::test::TempDir dir;
  CHECK_THROWS_AS(cbm::InputStream(dir.path().string(), {}), std::invalid_argument);
  CHECK_THAT(cbm::input_path_problem(dir.path().string()), Catch::Contains("is a directory"));
  CHECK_THAT(cbm::input_path_problem((dir / "missing").string()), Catch::Contains("cannot open"));
  cbm::test::write_text(dir / "t.txt", "a\nb\n");
  CHECK(cbm::input_path_problem((dir / "t.txt").string()).empty());
  cbm::InputStream in((dir / "t.txt").string(), [] { return false; });
  REQUIRE(in.regular());
  char line[8];
  REQUIRE(std::fgets(line, sizeof line, in.file()) != nullptr);
  CHECK(std::string(line) == "a\n");
  in.rewind();
  REQUIRE(std::fgets(line, sizeof line, in.file()) != nullptr);
  CHECK(std::string(line) == "a\n");
}
