#include "topic_rules.hpp"

namespace cbm {
namespace {

bool is_topic_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

std::string_view trim_topic(std::string_view text) {
  while (!text.empty() && is_topic_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_topic_space(text.back())) text.remove_suffix(1);
  return text;
}

Result<std::string, TopicProblem> checked_topic(std::string_view given) {
  using Kind = TopicProblem::Kind;
  const std::string_view topic = trim_topic(given);
  if (topic.empty()) return Err{TopicProblem{Kind::empty, "empty"}};
  if (topic.find('\0') != std::string_view::npos) {
    return Err{TopicProblem{Kind::nul_byte, "contains a NUL byte"}};
  }
  if (topic.size() > kMaxTopicBytes) {
    return Err{TopicProblem{Kind::too_long, "longer than " + std::to_string(kMaxTopicBytes) + " bytes (" +
                                                std::to_string(topic.size()) + ")"}};
  }
  if (!is_valid_utf8(topic)) return Err{TopicProblem{Kind::not_utf8, "not valid UTF-8"}};
  return std::string(topic);
}

}  // namespace cbm
