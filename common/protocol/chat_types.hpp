// The chat-completion request and response as this program uses them (docs/protocol.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "request_settings.hpp"

namespace cbm {

struct Message {
  std::string role;  // system | user | assistant | tool
  std::string content;
};

struct WebSearchTool {
  std::string query;
  SearchSettings settings;
};

struct ChatRequest {
  std::string model;
  std::vector<Message> messages;
  ModelSettings settings;
  bool stream = false;
  std::string request_id;                 // 6-64 chars, unique per request
  std::optional<WebSearchTool> web_search;  // the platform's built-in tool
};

// `POST {base}/web_search`: the platform's Web Search API, no model involved.
struct WebSearchRequest {
  std::string query;  // cut to kMaxSearchQueryChars characters when sent
  SearchSettings settings;
  std::string request_id;
};

// One step of an attempt on the wire: where it goes decides how its answer is read. Both answers
// become a ChatResponse (a web search's has sources and no content or usage).
using StepRequest = std::variant<ChatRequest, WebSearchRequest>;
enum class Endpoint { chat_completions, web_search };
inline Endpoint endpoint_of(const StepRequest& r) {
  return std::holds_alternative<ChatRequest>(r) ? Endpoint::chat_completions : Endpoint::web_search;
}

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;

  Usage& operator+=(const Usage& o) {
    prompt_tokens += o.prompt_tokens;
    completion_tokens += o.completion_tokens;
    total_tokens += o.total_tokens;
    return *this;
  }
};

// One entry of the response's `web_search[]`.
struct Source {
  std::string title;
  std::string link;
  std::string media;
  std::string publish_date;
  std::string content;  // the snippet; fed to the analysis prompt, not stored in the report
};

struct ChatResponse {
  std::string id;
  std::string request_id;
  std::string model;
  std::string content;            // may be empty (e.g. when tool_calls are present)
  std::string reasoning_content;  // GLM "thinking" output, when present
  std::string finish_reason;      // stop | length | tool_calls | sensitive | network_error | ...
  Usage usage;
  std::vector<Source> web_search;
  std::size_t replaced_characters = 0;  // invalid UTF-8 sequences the answer's texts had (now U+FFFD)
};

}  // namespace cbm
