#include "request_settings.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace cbm {
namespace {

template <typename Enum, std::size_t N>
using Names = std::array<std::pair<Enum, std::string_view>, N>;

constexpr Names<Thinking, 3> kThinking{
    {{Thinking::enabled, "enabled"}, {Thinking::disabled, "disabled"}, {Thinking::automatic, "auto"}}};
constexpr Names<ResponseFormat, 2> kResponseFormat{
    {{ResponseFormat::text, "text"}, {ResponseFormat::json_object, "json"}}};
constexpr Names<ApiFlavor, 2> kApiFlavor{{{ApiFlavor::bigmodel, "bigmodel"}, {ApiFlavor::openai, "openai"}}};
constexpr Names<SearchVia, 2> kSearchVia{{{SearchVia::tool, "tool"}, {SearchVia::api, "api"}}};

template <typename Enum, std::size_t N>
std::string_view name_of(const Names<Enum, N>& table, Enum e) {
  for (const auto& [value, name] : table) {
    if (value == e) return name;
  }
  return "unknown";
}

template <typename Enum, std::size_t N>
std::optional<Enum> value_of(const Names<Enum, N>& table, std::string_view s) {
  for (const auto& [value, name] : table) {
    if (name == s) return value;
  }
  return std::nullopt;
}

// search_std, search_pro, search_pro_sogou and search_pro_quark are BigModel's; search_pro_jina and
// search-prime Z.AI's (the latter for the Web Search API).
constexpr std::array<std::string_view, 6> kSearchEngines{
    "search_std", "search_pro", "search_pro_sogou", "search_pro_quark", "search_pro_jina", "search-prime"};
constexpr std::array<std::string_view, 5> kRecency{"oneDay", "oneWeek", "oneMonth", "oneYear", "noLimit"};
constexpr std::array<std::string_view, 2> kContentSizes{"medium", "high"};

constexpr std::array<std::string_view, 30> kModels{
    // GLM-5 family: think whenever thinking is enabled.
    "glm-5.3", "glm-5.2", "glm-5.1", "glm-5", "glm-5-turbo",
    // GLM-4.7 thinks whenever enabled; GLM-4.6 and the 4.5 family decide per request.
    "glm-4.7", "glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-airx", "glm-4.5-flash",
    // No thinking.
    "glm-4-plus", "glm-4-air-250414", "glm-4-airx", "glm-4-flashx", "glm-4-flashx-250414",
    "glm-4-flash-250414",
    // <think> in the content.
    "glm-z1-air", "glm-z1-airx", "glm-z1-flash", "glm-z1-flashx",
    // Vision.
    "glm-5v-turbo", "glm-4.6v", "glm-4.6v-flash", "glm-4.5v", "glm-4.1v-thinking-flash",
    "glm-4.1v-thinking-flashx", "glm-4v-plus-0111", "glm-4v-flash"};

constexpr std::string_view kSuggestedModel = "glm-4.5-air";

std::string one_of(std::span<const std::string_view> values) {
  std::string out;
  for (const auto v : values) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

// 'value' is not one of a, b, c. Appended piece by piece: `"'" + std::string` trips g++ 12's false
// -Wrestrict at -O3.
std::string not_one_of(std::string_view value, std::span<const std::string_view> values) {
  std::string out = "'";
  out += value;
  out += "' is not one of ";
  out += one_of(values);
  return out;
}

bool listed(std::span<const std::string_view> values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

// Numbers as the user wrote them, without trailing zeros ("1.5", not "1.500000").
std::string number_text(double d) {
  std::string s = std::to_string(d);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

}  // namespace

std::string_view to_string(Thinking t) {
  return name_of(kThinking, t);
}
std::string_view to_string(ResponseFormat f) {
  return name_of(kResponseFormat, f);
}
std::string_view to_string(ApiFlavor f) {
  return name_of(kApiFlavor, f);
}
std::string_view to_string(SearchVia v) {
  return name_of(kSearchVia, v);
}
std::optional<Thinking> thinking_from_string(std::string_view s) {
  return value_of(kThinking, s);
}
std::optional<ResponseFormat> response_format_from_string(std::string_view s) {
  return value_of(kResponseFormat, s);
}
std::optional<ApiFlavor> api_flavor_from_string(std::string_view s) {
  return value_of(kApiFlavor, s);
}
std::optional<SearchVia> search_via_from_string(std::string_view s) {
  return value_of(kSearchVia, s);
}

std::span<const std::string_view> search_engines() {
  return kSearchEngines;
}
std::span<const std::string_view> search_recency_values() {
  return kRecency;
}
std::span<const std::string_view> search_content_sizes() {
  return kContentSizes;
}
std::span<const std::string_view> documented_models() {
  return kModels;
}
bool is_documented_model(std::string_view model) {
  return listed(kModels, model);
}

std::string SettingProblem::flag() const {
  std::string out = "--";
  for (const char c : field) out += c == '_' ? '-' : c;
  return out;
}

std::optional<SettingProblem> settings_problem(const ModelSettings& model, const SearchSettings& search) {
  // Written so that NaN fails every range.
  if (!(model.temperature >= 0.0 && model.temperature <= 1.0)) {
    return SettingProblem{"temperature", number_text(model.temperature) + " is not in [0, 1]"};
  }
  if (!(model.top_p > 0.0 && model.top_p <= 1.0)) {
    return SettingProblem{"top_p", number_text(model.top_p) + " is not in (0, 1]"};
  }
  if (model.max_tokens < 1 || model.max_tokens > kMaxTokensLimit) {
    return SettingProblem{
        "max_tokens", std::to_string(model.max_tokens) + " is not in 1.." + std::to_string(kMaxTokensLimit)};
  }
  if (!listed(kSearchEngines, search.engine)) {
    return SettingProblem{"search_engine", not_one_of(search.engine, kSearchEngines)};
  }
  if (!listed(kRecency, search.recency)) {
    return SettingProblem{"search_recency", not_one_of(search.recency, kRecency)};
  }
  if (search.domain.find_first_of(" \t\r\n/") != std::string::npos) {
    std::string message = "'";
    message += search.domain;
    message += "' is not a domain (e.g. www.example.com)";
    return SettingProblem{"search_domain", std::move(message)};
  }
  if (search.count < 1 || search.count > kMaxSearchCount) {
    return SettingProblem{"search_count",
                          std::to_string(search.count) + " is not in 1.." + std::to_string(kMaxSearchCount)};
  }
  if (!listed(kContentSizes, search.content_size)) {
    return SettingProblem{"search_content_size", not_one_of(search.content_size, kContentSizes)};
  }
  return std::nullopt;
}

std::optional<SettingProblem> model_problem(std::string_view field, std::string_view model) {
  if (is_documented_model(model)) return std::nullopt;
  std::string message = "'";
  message += model;
  message += "' is not a model the platform documents (e.g. ";
  message += kSuggestedModel;
  message +=
      "; README \"Talking to the platform\" lists them); for a private alias or another server, "
      "allow unlisted models (--allow-unlisted-model, Config::allow_unlisted_model)";
  return SettingProblem{std::string(field), std::move(message)};
}

std::string truncate_utf8(std::string_view text, std::size_t max_chars) {
  std::size_t pos = 0;
  for (std::size_t chars = 0; pos < text.size() && chars < max_chars; ++chars) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    const std::size_t len = lead < 0x80           ? 1
                            : (lead >> 5) == 0x6  ? 2
                            : (lead >> 4) == 0xE  ? 3
                            : (lead >> 3) == 0x1E ? 4
                                                  : 1;
    std::size_t next = pos + 1;
    // Continuation bytes only: a cut or malformed sequence ends at the first byte that is not one.
    while (next < pos + len && next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80)
      ++next;
    pos = next;
  }
  return std::string(text.substr(0, pos));
}

}  // namespace cbm
