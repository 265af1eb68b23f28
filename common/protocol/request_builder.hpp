// Serialises the requests of a step into the platform's JSON bodies (docs/protocol.md, "Chat
// completions request" and "The Web Search API").
#pragma once

#include <string>

#include "chat_types.hpp"

namespace cbm {

// In the openai flavour only the fields api.openai.com accepts are written: no thinking, request_id or
// web_search tool (a request with the tool is the caller's error: the configuration refuses it first).
std::string build_request_body(const ChatRequest& request, ApiFlavor flavor = ApiFlavor::bigmodel);

// The Web Search API's body; the query is cut to kMaxSearchQueryChars characters.
std::string build_web_search_body(const WebSearchRequest& request);

}  // namespace cbm
