// Parsing of the platform's answers: chat completions (plain JSON and SSE streams), Web Search API
// answers and error bodies.
//
// Tolerant of missing optional fields, strict about types: a field present with the wrong type is an
// error naming the field ("choices[0].message.content: expected string, got number"). Never crashes and
// never over-allocates on any byte sequence (fuzzed: tests/fuzz/response_parser_fuzz.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chat_types.hpp"
#include "result.hpp"

namespace cbm {

struct ParseError {
  std::string message;
};

Result<ChatResponse, ParseError> parse_chat_response(std::string_view body);

// A complete `text/event-stream` body: `data: {chunk}` events, ending with `data: [DONE]`.
// Deltas are concatenated; finish_reason and usage come from the last chunk that has them. An error
// frame — `data: {"error":{...}}`, or any data after `event: error` (`{"error":{...}}`, the error object
// itself, or text) — ends the parse with a PlatformError through `error_frame`.
struct PlatformError {
  std::string code;
  std::string message;
};
struct StreamOutcome {
  ChatResponse response;
  std::optional<PlatformError> error_frame;
};
Result<StreamOutcome, ParseError> parse_chat_stream(std::string_view body);

// A Web Search API answer, `{id, request_id, search_intent, search_result:[{title, link, ...}]}`, as a
// ChatResponse with its sources (no content, no usage). `search_result` is required (it may be empty).
Result<ChatResponse, ParseError> parse_web_search_response(std::string_view body);

// `{"error":{"code":"1302","message":"..."}}` (code as string or number). nullopt when the body is not
// of that shape (HTML from a proxy, empty, truncated).
std::optional<PlatformError> parse_error_body(std::string_view body);

}  // namespace cbm
