#include "http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace cbm {
namespace {

struct Transfer {
  HttpResponse response;
  std::size_t max_body = 0;
  bool too_large = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * nmemb;
  if (t->response.body.size() + n > t->max_body) {
    t->too_large = true;
    return 0;  // makes libcurl abort with CURLE_WRITE_ERROR
  }
  t->response.body.append(data, n);
  return n;
}

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

std::size_t on_header(char* data, std::size_t size, std::size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * nmemb;
  std::string_view line(data, n);
  // A new status line (after 100-continue or an interim answer) starts a fresh header set.
  if (line.starts_with("HTTP/")) {
    t->response.content_type.clear();
    t->response.retry_after.reset();
    t->response.retry_after_ms.reset();
  } else if (header_is(line, "content-type")) {
    t->response.content_type = header_value(line, 12);
  } else if (header_is(line, "retry-after")) {
    t->response.retry_after = header_value(line, 11);
  } else if (header_is(line, "retry-after-ms")) {
    t->response.retry_after_ms = header_value(line, 14);
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort = static_cast<const std::atomic<bool>*>(user);
  return abort->load(std::memory_order_relaxed) ? 1 : 0;  // non-zero aborts the transfer
}

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

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

HttpClient::HttpClient(HttpOptions options) : options_(options), curl_(curl_easy_init()) {
  if (curl_ == nullptr) throw std::runtime_error("curl_easy_init failed");
}

HttpClient::~HttpClient() { curl_easy_cleanup(curl_); }

Result<HttpResponse, TransportError> HttpClient::post(const std::string& url,
                                                      const std::vector<std::string>& headers,
                                                      const std::string& body,
                                                      std::chrono::milliseconds timeout) {
  if (timeout <= std::chrono::milliseconds::zero()) {
    return Err{TransportError{TransportError::Kind::timeout, "deadline passed before the request was sent"}};
  }
  // "Expect:" suppresses libcurl's 100-continue round trip on large bodies.
  curl_slist* list = append_header(nullptr, "Expect:");
  for (const auto& h : headers) list = append_header(list, h.c_str());
  std::unique_ptr<curl_slist, SlistDeleter> header_list(list);

  Transfer t;
  t.max_body = options_.max_body_bytes;
  char error_buffer[CURL_ERROR_SIZE] = {0};

  // The handle keeps its connection cache across calls; only per-request options are reset here.
  curl_easy_reset(curl_);
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);  // never carry the key to another host
  curl_easy_setopt(curl_, CURLOPT_POST, 1L);
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(options_.connect_timeout, timeout).count()));
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
  curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time.count()));
  curl_easy_setopt(curl_, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl_, CURLOPT_TCP_KEEPALIVE, 1L);
  if (options_.abort != nullptr) {
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, options_.abort);
  }

  const CURLcode rc = curl_easy_perform(curl_);
  if (t.too_large) {
    return Err{TransportError{TransportError::Kind::too_large,
                              "response body exceeds the cap of " + std::to_string(options_.max_body_bytes) +
                                  " bytes"}};
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    return Err{TransportError{TransportError::Kind::aborted, "request aborted: the run is stopping"}};
  }
  if (rc != CURLE_OK) {
    std::string message = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    return Err{TransportError{kind_of(rc), std::move(message)}};
  }
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &t.response.status);
  return std::move(t.response);
}

}  // namespace cbm
