// What a request asks of the platform besides its messages: the model settings, the web search's
// settings, the API flavour that decides which fields may be sent, and the documented models. The
// ranges and value lists live here once; the CLI (naming the flag) and the library (naming the Config
// field) both check through settings_problem / model_problem (docs/protocol.md, "Chat completions
// request", "Web search" and "Models").
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cbm {

enum class Thinking { enabled, disabled, automatic };  // automatic: no `thinking` field, the model decides
enum class ResponseFormat { text, json_object };
// bigmodel: every BigModel field; openai: only what api.openai.com accepts (no thinking, request_id,
// web_search tool).
enum class ApiFlavor { bigmodel, openai };
// tool: the search step is a chat call with the web_search tool; api: `POST {base}/web_search`.
enum class SearchVia { tool, api };

std::string_view to_string(Thinking t);
std::string_view to_string(ResponseFormat f);
std::string_view to_string(ApiFlavor f);
std::string_view to_string(SearchVia v);
std::optional<Thinking> thinking_from_string(std::string_view s);
std::optional<ResponseFormat> response_format_from_string(std::string_view s);
std::optional<ApiFlavor> api_flavor_from_string(std::string_view s);
std::optional<SearchVia> search_via_from_string(std::string_view s);

inline constexpr int kMaxTokensLimit = 131072;
inline constexpr int kMaxSearchCount = 50;
inline constexpr std::size_t kMaxSearchQueryChars = 70;  // the Web Search API's search_query limit

// The sampling and output settings of a chat call; both steps use the same (the search step never asks
// for a JSON answer).
struct ModelSettings {
  double temperature = 0.6;  // [0, 1]
  double top_p = 0.95;       // (0, 1]
  int max_tokens = 4096;     // 1 .. kMaxTokensLimit
  Thinking thinking = Thinking::disabled;
  ResponseFormat response_format = ResponseFormat::text;  // the analysis step's
};

// The web search's settings, for the web_search tool and the Web Search API alike.
struct SearchSettings {
  std::string engine = "search_std";    // one of search_engines(); always sent (the platform requires it)
  std::string recency = "noLimit";      // one of search_recency_values()
  std::string domain;                   // one domain to search within; empty: not sent
  int count = 5;                        // 1 .. kMaxSearchCount
  std::string content_size = "medium";  // medium | high
};

// The documented values (bigmodel-api reference, sections 3 and 4).
std::span<const std::string_view> search_engines();
std::span<const std::string_view> search_recency_values();
std::span<const std::string_view> search_content_sizes();

// What is wrong with a setting: the field as the library's Config names it ("search_count"), and why.
// The CLI's flag is the field with dashes ("--search-count").
struct SettingProblem {
  std::string field;
  std::string message;

  std::string flag() const;
};
std::optional<SettingProblem> settings_problem(const ModelSettings& model, const SearchSettings& search);

// The models the platform documents (bigmodel-api reference, section 7), in one list: the simulator
// knows the same ones.
std::span<const std::string_view> documented_models();
bool is_documented_model(std::string_view model);
// `field` ("chat_model") holds `model`: nullopt when documented, else the refusal with the way out.
std::optional<SettingProblem> model_problem(std::string_view field, std::string_view model);

// `text` cut to at most `max_chars` UTF-8 characters, never inside one (bytes that are not UTF-8 count
// one each).
std::string truncate_utf8(std::string_view text, std::size_t max_chars);

}  // namespace cbm
