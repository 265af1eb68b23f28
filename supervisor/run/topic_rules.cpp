#include "topic_rules.hpp"

#include <cstdint>

namespace cbm {
namespace {

bool is_topic_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

}  // namespace

bool is_valid_utf8(std::string_view text) { return utf8(text); }

std::string_view trim_topic(std::string_view text) {
  while (!text.empty() && is_topic_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_topic_space(text.back())) text.remove_suffix(1);
  return text;
}

Result<std::string, TopicProblem> checked_topic(std::string_view given) {
  using Kind = TopicProblem::Kind;
  const std::string_view topic = trim_topic(given);
  if (topic.empty()) return Err(TopicProblem{Kind::empty, "empty"});
  if (topic.find('\0') != std::string_view::npos) {
    return Err(TopicProblem{Kind::nul_byte, "contains a NUL byte"});
  }
  if (topic.size() > kMaxTopicBytes) {
    return Err(TopicProblem{Kind::too_long, "longer than " + std::to_string(kMaxTopicBytes) + " bytes (" +
                                                std::to_string(topic.size()) + ")"});
  }
  if (!utf8(topic)) return Err(TopicProblem{Kind::not_utf8, "not valid UTF-8"});
  return std::string(topic);
}

}  // namespace cbm
