// The chat-completion request and response as this program uses them (docs/protocol.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cbm {

struct Message {
  std::string role;  // system | user | assistant | tool
  std::string content;
};

struct WebSearchTool {
  std::string query;
  int count = 5;
};

struct ChatRequest {
  std::string model;
  std::vector<Message> messages;
  double temperature = 0.6;
  double top_p = 0.95;
  int max_tokens = 4096;
  bool stream = false;
  std::string request_id;                 // 6-64 chars, unique per request
  std::optional<WebSearchTool> web_search;  // the platform's built-in tool
};

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
};

}  // namespace cbm
