#include "topic_rules.hpp"

#include <catch2/catch.hpp>
#include <cstdio>

#include "topic_source.hpp"

using cbm::checked_topic;
using Kind = cbm::TopicProblem::Kind;

namespace {

Kind problem_of(std::string_view given) {
  auto topic = checked_topic(given);
  REQUIRE_FALSE(topic.ok());
  return topic.error().kind;
}

// What a topics file makes of one line: the topic, or the reason it was skipped.
std::string as_file_line(const std::string& line) {
  std::string text = line + "\n";
  std::FILE* f = ::fmemopen(text.data(), text.size(), "r");
  REQUIRE(f != nullptr);
  std::vector<cbm::InvalidLine> invalid;
  const auto topics = cbm::read_topic_lines(f, invalid);
  std::fclose(f);
  if (!invalid.empty()) return "skipped: " + invalid.front().reason;
  return topics.empty() ? "skipped silently" : topics.front();
}

}  // namespace

TEST_CASE("a topic is its text without the surrounding ASCII whitespace", "[topics]") {
  CHECK(checked_topic("alpha").value() == "alpha");
  CHECK(checked_topic(" \t\n\v\f\ralpha beta\r\f\v\n\t ").value() == "alpha beta");
  CHECK(checked_topic("Renewable\tenergy").value() == "Renewable\tenergy");  // inside: kept
  const std::string ideographic_space = "\xe3\x80\x80";  // Unicode whitespace, not ASCII: kept
  CHECK(checked_topic(ideographic_space + "alpha").value() == ideographic_space + "alpha");
}

TEST_CASE("a topic of whitespace only is empty, for every kind of whitespace", "[topics]") {
  for (const std::string_view blank : {"", " ", "\t", "\n", "\v", "\f", "\r", " \t\r\n\v\f "}) {
    CHECK(problem_of(blank) == Kind::empty);
  }
  CHECK(checked_topic("  ").error().what == "empty");
}

TEST_CASE("a topic with a NUL byte is refused", "[topics]") {
  CHECK(problem_of(std::string_view("a\0b", 3)) == Kind::nul_byte);
  CHECK(checked_topic(std::string_view("a\0b", 3)).error().what == "contains a NUL byte");
}

TEST_CASE("a topic's length bound counts the trimmed text", "[topics]") {
  const std::string longest(cbm::kMaxTopicBytes, 'x');
  CHECK(checked_topic(longest).ok());
  CHECK(checked_topic("  " + longest + "  ").ok());
  CHECK(problem_of(longest + "y") == Kind::too_long);
  CHECK(checked_topic(longest + "y").error().what == "longer than 4096 bytes (4097)");
}

TEST_CASE("a topic must be UTF-8: no stray, overlong, surrogate or out-of-range sequence", "[topics]") {
  CHECK(checked_topic("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80").ok());
  for (const std::string_view bad :
       {"\x80", "caf\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"}) {
    INFO(bad);
    CHECK(problem_of(bad) == Kind::not_utf8);
  }
  CHECK(checked_topic("\xff").error().what == "not valid UTF-8");
}

TEST_CASE("a topics file line gets the verdict the rule gives its text", "[topics]") {
  const std::vector<std::string> lines = {"alpha",
                                          "  alpha\t",
                                          "alpha\r",
                                          "\v\falpha\f\v",
                                          std::string("a\0b", 3),
                                          std::string(cbm::kMaxTopicBytes + 1, 'x'),
                                          "caf\xc3"};
  for (const std::string& line : lines) {
    INFO(line);
    auto topic = checked_topic(line);
    CHECK(as_file_line(line) == (topic ? topic.value() : "skipped: " + topic.error().what));
  }
  // Blank and comment lines are the file's format: skipped without a reason.
  CHECK(as_file_line(" \t\v\f\r") == "skipped silently");
  CHECK(as_file_line("  # a comment") == "skipped silently");
}
