#include "prompt_template.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

namespace cbm {
namespace {

constexpr std::string_view kSearchSystem =
    "You are a research assistant. Use the web_search tool to find recent, reliable sources.";
constexpr std::string_view kSearchUser = "Find the most relevant recent information about: {topic}";
constexpr std::string_view kAnalysisSystem =
    "You are a careful analyst. Write a structured, factual analysis and cite sources as [n].";
constexpr std::string_view kAnalysisUser =
    "Topic: {topic}\n\nSources:\n{sources}\n\n"
    "Write an analysis of the topic: background, current state, key developments, outlook.";

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

PromptTemplate must_parse(std::string_view text) { return PromptTemplate::parse(text).value(); }

}  // namespace

Result<PromptTemplate, TemplateError> PromptTemplate::parse(std::string_view text) {
  PromptTemplate t;
  t.source_ = std::string(text);
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) t.segments_.push_back({Piece::literal, std::exchange(literal, {})});
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      literal += c;
      ++i;
      continue;
    }
    if (c == '}') return Err{TemplateError{"unmatched '}' at offset " + std::to_string(i) + " (write '}}')"}};
    if (c != '{') {
      literal += c;
      continue;
    }
    const std::size_t close = text.find('}', i);
    if (close == std::string_view::npos) {
      return Err{TemplateError{"unclosed '{' at offset " + std::to_string(i) + " (write '{{' for a brace)"}};
    }
    const std::string_view name = text.substr(i + 1, close - i - 1);
    flush();
    if (name == "topic") {
      t.segments_.push_back({Piece::topic, {}});
    } else if (name == "sources") {
      t.segments_.push_back({Piece::sources, {}});
    } else if (name.empty() || name.find('{') != std::string_view::npos) {
      return Err{TemplateError{"empty or nested placeholder at offset " + std::to_string(i) +
                               " (write '{{' for a brace)"}};
    } else {
      t.segments_.push_back({Piece::field, std::string(name)});
    }
    i = close;
  }
  flush();
  return t;
}

std::string PromptTemplate::render(std::string_view topic, std::string_view sources, const Fields& fields) const {
  std::string out;
  for (const auto& s : segments_) {
    switch (s.piece) {
      case Piece::literal:
        out += s.text;
        break;
      case Piece::topic:
        out += topic;
        break;
      case Piece::sources:
        out += sources;
        break;
      case Piece::field:
        if (const std::string* value = find_field(fields, s.text)) out += *value;
        break;
    }
  }
  return out;
}

std::vector<std::string> PromptTemplate::field_names() const {
  std::vector<std::string> names;
  for (const auto& s : segments_) {
    if (s.piece == Piece::field && std::find(names.begin(), names.end(), s.text) == names.end()) {
      names.push_back(s.text);
    }
  }
  return names;
}

bool PromptTemplate::uses_sources() const {
  for (const auto& s : segments_) {
    if (s.piece == Piece::sources) return true;
  }
  return false;
}

std::vector<std::string> PromptSet::field_names() const {
  std::vector<std::string> names;
  for (const PromptTemplate* t : {&search_system, &search_user, &analysis_system, &analysis_user}) {
    for (auto& name : t->field_names()) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
    }
  }
  return names;
}

std::optional<TemplateError> PromptSet::check_fields(const std::vector<std::string>& known) const {
  const std::array<std::pair<std::string_view, const PromptTemplate*>, 4> sections{{
      {"[search.system]", &search_system},
      {"[search.user]", &search_user},
      {"[analysis.system]", &analysis_system},
      {"[analysis.user]", &analysis_user},
  }};
  for (const auto& [section, t] : sections) {
    for (const auto& name : t->field_names()) {
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      std::string message(section);
      message += ": unknown placeholder {" + name + "}: the known ones are {topic}, {sources}";
      for (const auto& k : known) {
        message += ", {";
        message += k;
        message += '}';
      }
      if (known.empty()) message += " (the input has no fields; rows with fields come as JSONL or CSV)";
      return TemplateError{std::move(message)};
    }
  }
  return std::nullopt;
}

PromptSet PromptSet::defaults() {
  return {must_parse(kSearchSystem), must_parse(kSearchUser), must_parse(kAnalysisSystem),
          must_parse(kAnalysisUser)};
}

Result<PromptSet, TemplateError> PromptSet::from_file_text(std::string_view text) {
  PromptSet set = defaults();
  const std::array<std::pair<std::string_view, PromptTemplate PromptSet::*>, 4> sections{{
      {"[search.system]", &PromptSet::search_system},
      {"[search.user]", &PromptSet::search_user},
      {"[analysis.system]", &PromptSet::analysis_system},
      {"[analysis.user]", &PromptSet::analysis_user},
  }};
  PromptTemplate PromptSet::*current = nullptr;
  std::string_view current_name;
  std::string body;
  int line_no = 0;
  auto finish_section = [&]() -> std::optional<TemplateError> {
    if (current == nullptr) return std::nullopt;
    auto parsed = PromptTemplate::parse(trim(body));
    if (!parsed) return TemplateError{std::string(current_name) + ": " + parsed.error().message};
    set.*current = std::move(parsed.value());
    body.clear();
    return std::nullopt;
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    const std::string_view header = trim(line);
    if (header.starts_with('[') && header.ends_with(']') && header.find('{') == std::string_view::npos) {
      if (auto e = finish_section()) return Err{std::move(*e)};
      current = nullptr;
      for (const auto& [name, member] : sections) {
        if (header == name) {
          current = member;
          current_name = name;
        }
      }
      if (current == nullptr) {
        return Err{TemplateError{"line " + std::to_string(line_no) + ": unknown section " + std::string(header) +
                                 " (known: [search.system] [search.user] [analysis.system] [analysis.user])"}};
      }
      continue;
    }
    if (current == nullptr) {
      if (!trim(line).empty() && !trim(line).starts_with('#')) {
        return Err{TemplateError{"line " + std::to_string(line_no) + ": text before the first [section] header"}};
      }
      continue;
    }
    body += line;
    body += '\n';
  }
  if (auto e = finish_section()) return Err{std::move(*e)};
  return set;
}

}  // namespace cbm
