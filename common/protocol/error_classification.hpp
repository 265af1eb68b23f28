// The platform's error table (docs/protocol.md, "Errors") as data: what an HTTP status and a platform
// error code mean for the task and the run, when a usage cap resets, and when an answer is incomplete.
// Pure: the caller passes the wall-clock time.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "api_error.hpp"

namespace cbm {

// One row of the table: a platform code, its class and what it means (for messages and docs).
struct ErrorCodeInfo {
  int code;
  ErrorClass error_class;
  std::string_view meaning;
};

// Every code the platform documents (bigmodel-api.md §6 as docs/protocol.md lists it), by code.
std::span<const ErrorCodeInfo> error_code_table();
// The row of `code` ("1302", or a number written as a string); nullptr for an unknown code.
const ErrorCodeInfo* find_error_code(std::string_view code);

// Classifies an error answer by its code when the table has it, else by its HTTP status. `code` is
// the platform's `error.code` string, empty when the body had none.
ErrorClass classify_http_error(int http_status, std::string_view code);

// Classifies `error` (its http_status, code and message set from the answer) in place: error_class;
// for a usage cap (wait_until) resume_at, when the message names a plausible reset time; and the
// message gains a hint where the table has one (a strict OpenAI server's unknown field, a cap with no
// reset time). `now` is the wall clock, for the plausibility of a reset time.
void classify_api_error(ApiError& error, std::chrono::system_clock::time_point now);

// The reset time a usage-cap message names ("Your limit will reset at 2026-05-25 19:22:49"): the
// first date and time in it (`-`, `/` or `.` between date parts, ` ` or `T` before the time, seconds
// optional), in the zone written after it (Z, UTC, GMT, +08:00, +0800, UTC+8, CST = China Standard
// Time) or, when none is written, UTC+8 as the platform writes its times; else a Unix timestamp of 10
// (seconds) or 13 (milliseconds) digits. nullopt when the message has neither.
std::optional<std::chrono::system_clock::time_point> parse_reset_time(std::string_view message);

// How far ahead a reset time may lie and still be believed: a monthly cap (1310) resets within a month.
inline constexpr std::chrono::hours kMaxQuotaWait{24 * 32};

// parse_reset_time, kept only when it lies after `now` and at most kMaxQuotaWait ahead.
std::optional<std::chrono::system_clock::time_point> quota_resume_at(std::string_view message,
                                                                     std::chrono::system_clock::time_point now);

// A 200 answer whose finish_reason says it is not an analysis: "sensitive" (blocked by the safety
// review: task_fatal) or "network_error" (inference failed: retryable). Returns nullopt for reasons
// that carry an answer (stop, length, tool_calls, model_context_window_exceeded; completeness is
// incomplete_answer's question).
std::optional<ErrorClass> classify_finish_reason(std::string_view finish_reason);

// Why an analysis answer is incomplete — cut at max_tokens (finish_reason `length`), cut at the
// model's context window (`model_context_window_exceeded`), or empty after trimming whitespace — or
// nullopt when it is complete.
std::optional<std::string> incomplete_answer(std::string_view finish_reason, std::string_view content);

}  // namespace cbm
