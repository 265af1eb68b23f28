#include "bigmodel_client.hpp"

#include "wire_text.hpp"

#include <curl/curl.h>

#include <charconv>

#include "cbm/version.hpp"
#include "error_classification.hpp"
#include "request_builder.hpp"
#include "response_parser.hpp"
#include "secret_scrubber.hpp"
#include "wire_text.hpp"

namespace cbm {
namespace {

using std::chrono::milliseconds;

std::optional<std::int64_t> parse_non_negative(std::string_view s) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || end != s.data() + s.size() || n < 0) return std::nullopt;
  return n;
}

ApiError transport_error(const TransportError& e) {
  ApiError err;
  err.error_class = ErrorClass::retryable;
  switch (e.kind) {
    case TransportError::Kind::timeout:
      err.kind = ErrorKind::timeout;
      break;
    case TransportError::Kind::too_large:
      // The same request would produce the same oversized answer.
      err.kind = ErrorKind::protocol;
      err.error_class = ErrorClass::task_fatal;
      break;
    case TransportError::Kind::aborted:
      err.kind = ErrorKind::cancelled;
      break;
    case TransportError::Kind::connection:
    case TransportError::Kind::other:
      err.kind = ErrorKind::transport;
      break;
  }
  err.message = e.message;
  return err;
}

// An error answer from the platform — an error status, an HTTP 200 body `{"error":...}` or an error frame
// in an HTTP 200 event stream — classified by the one table (error_classification.hpp).
ApiError platform_error(const HttpResponse& resp, const std::optional<PlatformError>& platform) {
  ApiError err;
  err.kind = ErrorKind::api;
  err.http_status = static_cast<int>(resp.status);
  if (platform) {
    err.code = platform->code;
    err.message = platform->message;
  }
  if (err.message.empty()) {
    err.message = resp.status >= 200 && resp.status < 300 ? "the server sent an error with no message"
                                                          : "the server answered with an error status and no error message";
  }
  classify_api_error(err, std::chrono::system_clock::now());
  err.retry_after = parse_retry_after(resp.retry_after, resp.retry_after_ms, std::chrono::system_clock::now());
  return err;
}

ApiError protocol_error(std::string message) {
  ApiError err;
  err.kind = ErrorKind::protocol;
  // A garbled answer is usually a proxy or a transient fault: worth another attempt.
  err.error_class = ErrorClass::retryable;
  err.message = "invalid response: " + std::move(message);
  return err;
}

std::string trim_trailing_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

std::optional<milliseconds> parse_retry_after(const std::optional<std::string>& retry_after,
                                              const std::optional<std::string>& retry_after_ms,
                                              std::chrono::system_clock::time_point now) {
  if (retry_after_ms) {
    if (auto ms = parse_non_negative(*retry_after_ms)) return milliseconds(*ms);
  }
  if (!retry_after) return std::nullopt;
  if (auto seconds = parse_non_negative(*retry_after)) {
    // Clamp before multiplying: a hostile value must not overflow.
    return milliseconds(std::min<std::int64_t>(*seconds, 86400) * 1000);
  }
  const time_t when = curl_getdate(retry_after->c_str(), nullptr);
  if (when < 0) return std::nullopt;
  const auto delta = std::chrono::system_clock::from_time_t(when) - now;
  return std::max(milliseconds::zero(), std::chrono::duration_cast<milliseconds>(delta));
}

ApiError exchange_error(const Result<HttpResponse, TransportError>& sent, std::string_view api_key) {
  ApiError e = sent ? platform_error(sent.value(), parse_error_body(sent->body)) : transport_error(sent.error());
  e.replaced_characters += clean_wire_text(e.message, api_key);
  cap_text(e.message, kMaxErrorMessageBytes);
  e.replaced_characters += clean_wire_text(e.code, api_key);
  cap_text(e.code, 64);
  return e;
}

BigModelProtocol::BigModelProtocol(ClientConfig config)
    : config_(std::move(config)),
      chat_url_(trim_trailing_slashes(config_.base_url) + "/chat/completions"),
      web_search_url_(trim_trailing_slashes(config_.base_url) + "/web_search") {
  std::string user_agent = "User-Agent: concurrent_bigmodel/";
  user_agent += kVersion;
  std::vector<std::string> common{"Content-Type: application/json", std::move(user_agent),
                                  "Authorization: Bearer " + config_.api_key};
  if (!config_.accept_language.empty()) {
    std::string accept_language = "Accept-Language: ";
    accept_language += config_.accept_language;
    common.push_back(std::move(accept_language));
  }
  headers_ = common;
  headers_.push_back(config_.stream ? "Accept: text/event-stream" : "Accept: application/json");
  web_search_headers_ = std::move(common);
  web_search_headers_.push_back("Accept: application/json");
}

HttpRequest BigModelProtocol::prepare(const StepRequest& request) const {
  if (const auto* search = std::get_if<WebSearchRequest>(&request)) {
    return HttpRequest{web_search_url_, web_search_headers_, build_web_search_body(*search)};
  }
  ChatRequest chat = std::get<ChatRequest>(request);
  chat.stream = config_.stream;
  return HttpRequest{chat_url_, headers_, build_request_body(chat, config_.flavor)};
}

Result<ChatResponse, ApiError> BigModelProtocol::interpret(
    Endpoint endpoint, const Result<HttpResponse, TransportError>& sent) const {
  auto answer = endpoint == Endpoint::web_search && sent && sent->status >= 200 && sent->status < 300
                    ? classify_web_search(sent)
                    : classify(sent);
  // Everything kept of an answer is valid UTF-8 without the key (a server or proxy may echo the
  // Authorization header, in an error text or an answer), an error message of bounded size.
  const std::string& key = config_.api_key;
  if (!answer) {
    ApiError& e = answer.error();
    e.replaced_characters += clean_wire_text(e.message, key);
    cap_text(e.message, kMaxErrorMessageBytes);
    e.replaced_characters += clean_wire_text(e.code, key);
    cap_text(e.code, 64);
    return answer;
  }
  ChatResponse& r = answer.value();
  for (std::string* text : {&r.id, &r.request_id, &r.model, &r.content, &r.reasoning_content, &r.finish_reason}) {
    r.replaced_characters += clean_wire_text(*text, key);
  }
  for (Source& source : r.web_search) {
    for (std::string* text : {&source.title, &source.link, &source.media, &source.publish_date, &source.content}) {
      r.replaced_characters += clean_wire_text(*text, key);
    }
  }
  return answer;
}

BigModelClient::BigModelClient(ClientConfig config) : protocol_(std::move(config)), http_(protocol_.config().http) {}

Result<ChatResponse, ApiError> BigModelClient::complete(const StepRequest& request,
                                                        std::chrono::steady_clock::time_point deadline) {
  return protocol_.interpret(endpoint_of(request),
                             http_.post(protocol_.prepare(request), time_until(deadline)));
}

// A 2xx answer of the Web Search API: its results; an error body some servers send under 200 is
// classified as a chat call's is.
Result<ChatResponse, ApiError> BigModelProtocol::classify_web_search(
    const Result<HttpResponse, TransportError>& sent) const {
  auto parsed = parse_web_search_response(sent->body);
  if (parsed) return std::move(parsed.value());
  if (parse_error_body(sent->body)) return classify(sent);
  return Err{protocol_error(parsed.error().message)};
}

Result<ChatResponse, ApiError> BigModelProtocol::classify(const Result<HttpResponse, TransportError>& sent) const {
  if (!sent) return Err{transport_error(sent.error())};
  const HttpResponse& resp = sent.value();
  if (resp.status < 200 || resp.status >= 300) return Err{platform_error(resp, parse_error_body(resp.body))};

  ChatResponse answer;
  if (resp.content_type.starts_with("text/event-stream")) {
    auto parsed = parse_chat_stream(resp.body);
    if (!parsed) {
      // A server that sends its error as a plain JSON body under an event-stream content type.
      if (auto platform = parse_error_body(resp.body)) return Err{platform_error(resp, platform)};
      return Err{protocol_error(parsed.error().message)};
    }
    if (parsed->error_frame) return Err{platform_error(resp, parsed->error_frame)};
    answer = std::move(parsed->response);
  } else {
    auto parsed = parse_chat_response(resp.body);
    if (!parsed) {
      // Some servers answer 200 with an error body.
      if (auto platform = parse_error_body(resp.body)) return Err{platform_error(resp, platform)};
      return Err{protocol_error(parsed.error().message)};
    }
    answer = std::move(parsed.value());
  }
  if (auto cls = classify_finish_reason(answer.finish_reason)) {
    ApiError err;
    err.kind = ErrorKind::content;
    err.error_class = *cls;
    err.http_status = static_cast<int>(resp.status);
    err.message = "finish_reason " + answer.finish_reason +
                  (answer.finish_reason == "sensitive" ? ": blocked by the platform's content review"
                                                       : ": inference failed on the platform");
    return Err{std::move(err)};
  }
  return answer;
}

}  // namespace cbm
