#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat_request.h"

namespace simulator {

struct Usage {
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;
};

// The simulated model's answer to one request, before it is rendered to the wire.
struct Completion {
  std::string id;
  std::string request_id;
  std::int64_t created = 0;  // unix seconds
  std::string model;
  std::string content;
  std::string_view finish_reason = "stop";
  Usage usage;
  std::string topic;              // what the web_search results are about
  unsigned web_search_count = 0;  // 0: the response carries no web_search[]
};

// How a rendered completion departs from the platform's shape (fault injection).
enum class Shape {
  kNormal,
  kEmptyChoices,  // "choices":[]
  kWrongTypes,    // message.content (delta.content when streaming) is a number
};

// The deterministic answer to `request`: "Analysis of <topic>: ..." padded to about `content_bytes`.
Completion make_completion(const ChatRequest& request, std::size_t content_bytes);

// The Web Search API's answer: {id, created, request_id, search_intent, search_result[count results]}.
std::string render_web_search_answer(const WebSearchApiRequest& request);

// Tokens as the simulator counts them: about one per four bytes.
std::uint64_t tokens_for(std::size_t bytes);

// The non-streaming response body.
std::string render_body(const Completion& completion, Shape shape);

// The JSON payloads of the SSE `data:` frames of a streamed answer: the content in a few delta pieces,
// web_search[] on the first chunk, finish_reason and usage on the last. `[DONE]` is not included.
std::vector<std::string> render_stream_chunks(const Completion& completion, Shape shape);

}  // namespace simulator
