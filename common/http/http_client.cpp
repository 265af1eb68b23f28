#include "http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace cbm {
namespace {

static_assert(CURL_ERROR_SIZE == 256, "HttpExchange::error_buffer_ is sized for CURL_ERROR_SIZE");

bool header_is(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  return std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
}

std::string header_value(std::string_view line, std::size_t name_len) {
  std::string_view v = line.substr(name_len + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
  return std::string(v);
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort = static_cast<const std::atomic<bool>*>(user);
  return abort->load(std::memory_order_relaxed) ? 1 : 0;  // non-zero aborts the transfer
}

curl_slist* append_header(curl_slist* list, const char* line) {
  curl_slist* grown = curl_slist_append(list, line);
  if (grown == nullptr) {
    curl_slist_free_all(list);
    throw std::bad_alloc();
  }
  return grown;
}

TransportError::Kind kind_of(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::Kind::timeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
      return TransportError::Kind::connection;
    default:
      return TransportError::Kind::other;
  }
}

}  // namespace

CurlGlobal::CurlGlobal() {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
}
CurlGlobal::~CurlGlobal() { curl_global_cleanup(); }

TransportError deadline_passed() {
  return TransportError{TransportError::Kind::timeout, "deadline passed before the request was sent"};
}

void HttpExchange::SlistDeleter::operator()(void* list) const { curl_slist_free_all(static_cast<curl_slist*>(list)); }

std::size_t HttpExchange::on_body(char* data, std::size_t size, std::size_t nmemb, void* self) {
  auto* x = static_cast<HttpExchange*>(self);
  const std::size_t n = size * nmemb;
  if (x->response_.body.size() + n > x->max_body_) {
    x->too_large_ = true;
    return 0;  // makes libcurl abort with CURLE_WRITE_ERROR
  }
  x->response_.body.append(data, n);
  return n;
}

std::size_t HttpExchange::on_header(char* data, std::size_t size, std::size_t nmemb, void* self) {
  auto* x = static_cast<HttpExchange*>(self);
  const std::size_t n = size * nmemb;
  std::string_view line(data, n);
  HttpResponse& r = x->response_;
  // A new status line (after 100-continue or an interim answer) starts a fresh header set.
  if (line.starts_with("HTTP/")) {
    r.content_type.clear();
    r.retry_after.reset();
    r.retry_after_ms.reset();
  } else if (header_is(line, "content-type")) {
    r.content_type = header_value(line, 12);
  } else if (header_is(line, "retry-after")) {
    r.retry_after = header_value(line, 11);
  } else if (header_is(line, "retry-after-ms")) {
    r.retry_after_ms = header_value(line, 14);
  }
  return n;
}

void HttpExchange::start(CURL* curl, const HttpRequest& request, const HttpOptions& options,
                         std::chrono::milliseconds timeout) {
  const bool same = curl == configured_ && request.url == url_ && request.headers == header_lines_ && options == options_;
  if (!same) {
    configure(curl, request, options);
  }
  response_ = HttpResponse{};
  max_body_ = options.max_body_bytes;
  too_large_ = false;
  error_buffer_[0] = '\0';
  const auto connect_timeout = std::min(options.connect_timeout, timeout);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
}

// Every option, from a reset handle (its connection cache stays).
void HttpExchange::configure(CURL* curl, const HttpRequest& request, const HttpOptions& options) {
  configured_ = nullptr;  // until it is done: a throw below leaves the handle to be configured again
  url_ = request.url;
  header_lines_ = request.headers;
  options_ = options;
  // "Expect:" suppresses libcurl's 100-continue round trip on large bodies.
  curl_slist* list = append_header(nullptr, "Expect:");
  for (const auto& h : request.headers) list = append_header(list, h.c_str());
  curl_easy_reset(curl);
  headers_.reset(list);

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);  // HTTP/2 where TLS offers it
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // never carry the key to another host
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &HttpExchange::on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &HttpExchange::on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer_);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.low_speed_time.count()));
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  if (options.abort != nullptr) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, options.abort);
  }
  configured_ = curl;
}

Result<HttpResponse, TransportError> HttpExchange::finish(CURL* curl, int curl_code) {
  const auto rc = static_cast<CURLcode>(curl_code);
  if (too_large_) {
    return Err{TransportError{TransportError::Kind::too_large,
                              "response body exceeds the cap of " + std::to_string(max_body_) + " bytes"}};
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    return Err{TransportError{TransportError::Kind::aborted, "request aborted: the run is stopping"}};
  }
  if (rc != CURLE_OK) {
    std::string message = error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(rc);
    return Err{TransportError{kind_of(rc), std::move(message)}};
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response_.status);
  return std::move(response_);
}

std::chrono::milliseconds time_until(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
}

HttpClient::HttpClient(HttpOptions options) : options_(options), curl_(curl_easy_init()) {
  if (curl_ == nullptr) throw std::runtime_error("curl_easy_init failed");
}

HttpClient::~HttpClient() { curl_easy_cleanup(curl_); }

Result<HttpResponse, TransportError> HttpClient::post(const HttpRequest& request, std::chrono::milliseconds timeout) {
  if (timeout <= std::chrono::milliseconds::zero()) return Err{deadline_passed()};
  exchange_.start(curl_, request, options_, timeout);
  return exchange_.finish(curl_, curl_easy_perform(curl_));
}

}  // namespace cbm
