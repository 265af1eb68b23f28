// ApiError: why one request (or one task attempt) failed, and what that means for the run.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace cbm {

// What a failure means for the caller (docs/protocol.md, "Errors").
enum class ErrorClass {
  retryable,   // transient: try the task again after a backoff
  task_fatal,  // this task will fail the same way again: fail it now
  run_fatal,   // every task will fail (auth, balance, unknown model): stop the run
  wait_until,  // a usage cap (1308, 1310): every task waits until `resume_at`, then goes on
};

// Where a failure came from, for the report and for metrics.
enum class ErrorKind {
  api,           // the server answered with an error status / error body
  transport,     // connection refused, reset, DNS, TLS...
  timeout,       // the attempt's deadline passed
  protocol,      // the server's answer is not a valid response (bad JSON, wrong types, too large)
  content,       // a valid answer that is not an analysis (finish_reason sensitive / network_error)
  invalid_json,  // response_format json was asked for and the answer is not a JSON object
  crash,         // the worker running the attempt died (set by the supervisor)
  cancelled,     // the run was stopped before the task finished
  incomplete,    // an answer cut short (finish_reason length / model_context_window_exceeded) or empty
};

std::string_view to_string(ErrorClass c);
std::string_view to_string(ErrorKind k);
std::optional<ErrorClass> error_class_from_string(std::string_view s);
std::optional<ErrorKind> error_kind_from_string(std::string_view s);

struct ApiError {
  ErrorClass error_class = ErrorClass::retryable;
  ErrorKind kind = ErrorKind::api;
  int http_status = 0;      // 0 when no HTTP answer was received
  std::string code;         // the platform's error code ("1302"), empty when none
  std::string message;      // human-readable; never contains the API key
  // Server-requested pause (Retry-After / retry-after-ms), honoured by the retry policy.
  std::optional<std::chrono::milliseconds> retry_after;
  // wait_until only: when the platform says the cap resets (parsed from its message). nullopt when the
  // message names no plausible time: the error is then retried with backoff like a retryable one.
  std::optional<std::chrono::system_clock::time_point> resume_at;
  // Invalid UTF-8 sequences of the server's text, replaced by U+FFFD in `message` and `code`. Not
  // encoded with the error: the failed step's record keeps it (StepRecord::replaced_characters).
  std::size_t replaced_characters = 0;

  // One line for logs and the report: "HTTP 429 code 1302: <message>".
  std::string describe() const;
};

}  // namespace cbm
