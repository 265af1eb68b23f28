// HTTP over libcurl. HttpExchange is one POST's setup and result on an easy handle, whoever drives
// it: HttpClient (blocking, one persistent handle, reused for keep-alive) or AsyncHttp (curl_multi, in
// async_http.hpp). Neither is thread-safe: one per thread or process (libcurl's rule).
// curl_global_init must have run (CurlGlobal) before the first one.
#pragma once

#include <memory>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "result.hpp"

typedef void CURL;  // NOLINT: libcurl's own spelling

namespace cbm {

// RAII for curl_global_init / curl_global_cleanup; create one in main() before any thread starts.
class CurlGlobal {
 public:
  CurlGlobal();
  ~CurlGlobal();
  CurlGlobal(const CurlGlobal&) = delete;
  CurlGlobal& operator=(const CurlGlobal&) = delete;
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{10000};
  // A transfer slower than low_speed_bytes per second for low_speed_time is aborted (a dripping server).
  long low_speed_bytes = 1;
  std::chrono::seconds low_speed_time{30};
  std::size_t max_body_bytes = 8u << 20;
  // When set and true, transfers in progress abort within a second (an immediate stop of the run).
  const std::atomic<bool>* abort = nullptr;

  bool operator==(const HttpOptions&) const = default;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::string content_type;
  std::optional<std::string> retry_after;     // `Retry-After` (seconds or HTTP date)
  std::optional<std::string> retry_after_ms;  // `retry-after-ms`
};

struct TransportError {
  enum class Kind { timeout, too_large, connection, aborted, other };
  Kind kind = Kind::other;
  std::string message;
};

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value" lines
  std::string body;                  // POSTed as is
};

// POSTs on one easy handle: every option this program relies on (connect/total timeouts, low-speed
// limit, body cap with a clear error, no signals, no redirects, keep-alive, the Retry-After headers
// captured), and the result read back. The handle points into the exchange (callbacks, error
// buffer, header list): the exchange must outlive the handle's use, stay where it is, and keep
// `request` alive until the transfer ends. The handle's connections stay cached across requests.
class HttpExchange {
 public:
  HttpExchange() = default;
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  // Configures `curl` for `request`; the whole transfer must end within `timeout` (> 0). A handle
  // configured by the previous start() for the same URL, headers and options keeps its options: only
  // the body and the timeouts are set again (a full reset costs more than the request's own work).
  void start(CURL* curl, const HttpRequest& request, const HttpOptions& options, std::chrono::milliseconds timeout);
  // The result, given the transfer's CURLcode (an int, so callers need not include curl.h).
  Result<HttpResponse, TransportError> finish(CURL* curl, int curl_code);

 private:
  struct SlistDeleter {
    void operator()(void* list) const;
  };
  static std::size_t on_body(char* data, std::size_t size, std::size_t nmemb, void* self);
  static std::size_t on_header(char* data, std::size_t size, std::size_t nmemb, void* self);

  void configure(CURL* curl, const HttpRequest& request, const HttpOptions& options);

  HttpResponse response_;
  std::size_t max_body_ = 0;
  bool too_large_ = false;
  // What the handle was last configured with (configure()): reused while it stays the same.
  CURL* configured_ = nullptr;
  std::string url_;
  std::vector<std::string> header_lines_;
  HttpOptions options_;
  std::unique_ptr<void, SlistDeleter> headers_;
  char error_buffer_[256] = {0};  // CURL_ERROR_SIZE
};

// A timeout that is over before the request leaves (the attempt's deadline passed in an earlier step).
TransportError deadline_passed();

// The time left until `deadline`, rounded up: curl counts whole milliseconds, and a request must never end
// before its deadline (truncating would cut up to a millisecond off every timeout).
std::chrono::milliseconds time_until(std::chrono::steady_clock::time_point deadline);

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // POSTs `body` with the given header lines; the whole exchange must finish within `timeout`.
  Result<HttpResponse, TransportError> post(const HttpRequest& request, std::chrono::milliseconds timeout);

 private:
  HttpOptions options_;
  CURL* curl_;
  HttpExchange exchange_;  // outlives the handle's last use: cleaned up in ~HttpClient, before it
};

}  // namespace cbm
