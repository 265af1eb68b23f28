// Topic rules: what makes a topic usable, one rule for every way a topic arrives (--topics, a topics
// file or stdin, the library's lists, POST /analyze), so the same text gets the same verdict and is
// sent as the same topic wherever it is given.
//
// A topic is trimmed of surrounding ASCII whitespace (space, \t, \n, \v, \f, \r: C's isspace), and the
// trimmed text is the topic: it is what is sent, reported and journaled, so " a" and "a" are one topic.
// It must not be empty, hold a NUL byte (it cannot cross a C string), be longer than kMaxTopicBytes (a
// bound on prompts and report records) or be invalid UTF-8 (the API and the JSON report take UTF-8).
// Skipping blank and '#' lines is the topics file's format, not a topic rule.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "result.hpp"
#include "wire_text.hpp"  // is_valid_utf8

namespace cbm {

inline constexpr std::size_t kMaxTopicBytes = 4096;

struct TopicProblem {
  enum class Kind { empty, nul_byte, too_long, not_utf8 };
  Kind kind;
  std::string what;  // "empty", "contains a NUL byte", "longer than 4096 bytes (5000)", "not valid UTF-8"
};


// `text` without its surrounding whitespace.
std::string_view trim_topic(std::string_view text);

// The topic `given` stands for (trimmed), or why it cannot be one.
Result<std::string, TopicProblem> checked_topic(std::string_view given);

}  // namespace cbm
