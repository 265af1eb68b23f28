// The platform's error table (docs/protocol.md, "Errors") as code: what an HTTP status and a platform
// error code mean for the task and the run.
#pragma once

#include <string_view>

#include "api_error.hpp"

namespace cbm {

// Classifies an error answer. `code` is the platform's `error.code` string, empty when the body had none.
ErrorClass classify_http_error(int http_status, std::string_view code);

// A 200 answer whose finish_reason says it is not an analysis: "sensitive" (blocked by the safety
// review: task_fatal) or "network_error" (inference failed: retryable). Returns nullopt for reasons
// that carry a usable answer (stop, length, tool_calls, model_context_window_exceeded).
std::optional<ErrorClass> classify_finish_reason(std::string_view finish_reason);

}  // namespace cbm
