#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "api_error.h"
#include "chat_request.h"
#include "completion.h"
#include "faults.h"

namespace simulator {

// What a chat request's answer is made of, shared by the online endpoint (session.cpp) and the Batch
// API's lines (batch_store.cpp), so one request body gets the same answer both ways.

// The marker fault a request carries (in its last user message, else its web_search query), when the
// ledger says this request must fault; `param` receives a parameterised fault's number.
std::optional<Fault> marker_fault(const ChatRequest& request, MarkerLedger& ledger, std::uint32_t& param);

// The platform error an error fault answers with (the 429s, 401, 400s, 500 1234, code_NNNN and its
// variants, the usage caps, huge_error, sse_error for a request that does not stream); nullopt for the
// faults that shape the answer's content or the connection instead.
std::optional<ApiError> fault_error(Fault fault, std::uint32_t param, bool stream);

// The completion for `request`, its content and finish_reason shaped by a content fault (sensitive,
// network_error, length, empty content, bad UTF-8, echo_key with `bearer`, oversize); other faults leave
// it as it is.
Completion faulted_completion(const ChatRequest& request, std::optional<Fault> fault,
                              std::size_t content_bytes, std::string_view bearer);

// When a usage-cap fault (quota_reset_Ns) says the limit resets: to the second, as the platform writes
// it, and at least `seconds` ahead.
std::chrono::system_clock::time_point quota_reset_time(std::uint32_t seconds);

// The Shape a fault renders the answer in (empty_choices, wrong_types; else normal).
Shape fault_shape(std::optional<Fault> fault);

}  // namespace simulator
