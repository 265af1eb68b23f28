// BigModelClient: one chat-completion call against the platform, with the answer classified.
//
// Every failure comes back as an ApiError whose class says what the caller should do (retry, fail
// the task, stop the run); the client itself never retries and never sleeps: the pipeline and the
// scheduler decide. Not thread-safe (it owns one HttpClient).
#pragma once

#include <chrono>

#include "api_error.hpp"
#include "chat_types.hpp"
#include "client_config.hpp"
#include "http_client.hpp"
#include "result.hpp"

namespace cbm {

class BigModelClient {
 public:
  explicit BigModelClient(ClientConfig config);

  // Sends `request` (its `stream` flag is overridden by the config) and returns the answer, or the
  // error with its class. The exchange must end by `deadline`.
  Result<ChatResponse, ApiError> complete(ChatRequest request, std::chrono::steady_clock::time_point deadline);

 private:
  Result<ChatResponse, ApiError> exchange(ChatRequest request, std::chrono::steady_clock::time_point deadline);

  ClientConfig config_;
  std::string url_;
  HttpClient http_;
};

// Retry-After as seconds or an HTTP date, or retry-after-ms; nullopt when absent or unparsable.
std::optional<std::chrono::milliseconds> parse_retry_after(const std::optional<std::string>& retry_after,
                                                           const std::optional<std::string>& retry_after_ms,
                                                           std::chrono::system_clock::time_point now);

}  // namespace cbm
