#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api_error.h"

namespace simulator {

// The web_search tool of a request, when the request enables it.
struct WebSearchTool {
  std::string engine;                // search_engine: required, one of the documented engines
  std::optional<std::string> query;  // search_query
  unsigned count = 5;                // how many results to return
  bool return_results = false;       // search_result:true — the response then carries web_search[]
};

// The parts of a /chat/completions request the simulator acts on.
struct ChatRequest {
  std::string model;
  std::string request_id;  // empty when the client sent none
  bool stream = false;
  std::string last_user_message;  // text of the last "user" message; empty when there is none
  std::optional<WebSearchTool> web_search;
  std::size_t prompt_bytes = 0;  // all message text, for usage.prompt_tokens

  // What the request is about: the web_search query when there is one, else the last user message.
  // Fault markers are part of it; the stats count topics as received.
  std::string_view topic() const;
};

// Parses and validates a /chat/completions body. Returns the error the platform would answer with:
// 1210 for malformed JSON, 1214 for a missing or mistyped field (a web_search tool without a known
// search_engine too), 1211 for a model not in `models`.
std::variant<ChatRequest, ApiError> parse_chat_request(std::string_view body,
                                                       const std::vector<std::string>& models);

// A POST /web_search body (the Web Search API).
struct WebSearchApiRequest {
  std::string query;       // search_query: required, at most 70 characters
  std::string engine;      // search_engine: required, one of the documented engines
  unsigned count = 10;     // 1..50
  std::string request_id;  // empty when the client sent none
};
// 1210 for malformed JSON, 1214 for a missing, mistyped or out-of-range field.
std::variant<WebSearchApiRequest, ApiError> parse_web_search_request(std::string_view body);

}  // namespace simulator
