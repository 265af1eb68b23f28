// HttpClient: one persistent libcurl easy handle, reused for keep-alive. Not thread-safe: one client per
// thread or process (libcurl's rule). curl_global_init must have run (CurlGlobal) before the first one.
#pragma once

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

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // POSTs `body` with the given header lines; the whole exchange must finish within `timeout`.
  Result<HttpResponse, TransportError> post(const std::string& url, const std::vector<std::string>& headers,
                                            const std::string& body, std::chrono::milliseconds timeout);

 private:
  HttpOptions options_;
  CURL* curl_;
};

}  // namespace cbm
