// BigModelClient: one call against the platform (a chat completion or a web search), with the answer
// classified.
//
// Every failure comes back as an ApiError whose class says what the caller should do (retry, fail
// the task, stop the run); the client itself never retries and never sleeps: the pipeline and the
// scheduler decide. Not thread-safe (it owns one HttpClient). Its two pure halves, BigModelProtocol,
// also serve the event loop, which does its own HTTP (async_http.hpp).
#pragma once

#include <chrono>

#include "api_error.hpp"
#include "chat_types.hpp"
#include "client_config.hpp"
#include "http_client.hpp"
#include "result.hpp"

namespace cbm {

// What to send for a step's request, and what the server's answer (or the transport's failure) means.
// Pure: no I/O, no state beyond the configuration.
class BigModelProtocol {
 public:
  explicit BigModelProtocol(ClientConfig config);

  // The HTTP request for `request`: a chat completion (its `stream` flag is overridden by the config)
  // or a Web Search API call (never streamed).
  HttpRequest prepare(const StepRequest& request) const;
  // The answer to a request for `endpoint`, or the error with its class; the API key never appears in
  // an error's text.
  Result<ChatResponse, ApiError> interpret(Endpoint endpoint,
                                           const Result<HttpResponse, TransportError>& sent) const;

  const ClientConfig& config() const { return config_; }

 private:
  Result<ChatResponse, ApiError> classify(const Result<HttpResponse, TransportError>& sent) const;
  Result<ChatResponse, ApiError> classify_web_search(const Result<HttpResponse, TransportError>& sent) const;

  ClientConfig config_;
  std::string chat_url_;
  std::string web_search_url_;
  std::vector<std::string> headers_;  // the same for every chat request
  std::vector<std::string> web_search_headers_;
};

class BigModelClient {
 public:
  explicit BigModelClient(ClientConfig config);

  // Sends `request` and returns the answer, or the error with its class. The exchange must end by
  // `deadline`.
  Result<ChatResponse, ApiError> complete(const StepRequest& request,
                                          std::chrono::steady_clock::time_point deadline);

 private:
  BigModelProtocol protocol_;
  HttpClient http_;
};

// The error of an exchange that did not succeed (a transport failure, or an error status and its body),
// classified by the one error table: for the Batch API's calls (batch_api.hpp), whose answers are not
// chat completions. The API key never appears in its text.
ApiError exchange_error(const Result<HttpResponse, TransportError>& sent, std::string_view api_key);

// Retry-After as seconds or an HTTP date, or retry-after-ms; nullopt when absent or unparsable.
std::optional<std::chrono::milliseconds> parse_retry_after(const std::optional<std::string>& retry_after,
                                                           const std::optional<std::string>& retry_after_ms,
                                                           std::chrono::system_clock::time_point now);

}  // namespace cbm
