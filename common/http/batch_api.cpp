#include "batch_api.hpp"

#include <curl/curl.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>

#include "bigmodel_client.hpp"
#include "cbm/version.hpp"

namespace cbm {
namespace {

std::string trim_trailing_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// Ids go into paths: only the characters ids are made of (a hostile id cannot change the request).
bool safe_id(const std::string& id) {
  if (id.empty() || id.size() > 256) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct MimeFree {
  void operator()(curl_mime* m) const { curl_mime_free(m); }
};

}  // namespace

// One call's state, for libcurl's callbacks.
struct BatchApi::Exchange {
  CURL* curl = nullptr;
  std::size_t max_body = 0;
  std::string body;  // the answer (or, when streamed, an error status's body)
  const std::function<void(std::string_view)>* on_data = nullptr;
  const std::atomic<bool>* abort = nullptr;
  const std::function<bool()>* stopping = nullptr;
  bool too_large = false;

  // libcurl calls it at least once a second, transferring or not: non-zero aborts the transfer.
  static int on_progress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* x = static_cast<const Exchange*>(self);
    const bool stop = (x->abort != nullptr && x->abort->load(std::memory_order_relaxed)) ||
                      (x->stopping != nullptr && *x->stopping && (*x->stopping)());
    return stop ? 1 : 0;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t nmemb, void* self) {
    auto* x = static_cast<Exchange*>(self);
    const std::size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    if (x->on_data != nullptr && *x->on_data && status >= 200 && status < 300) {
      (*x->on_data)(std::string_view(data, n));
      return n;
    }
    if (x->body.size() + n > x->max_body) {
      x->too_large = true;
      return 0;
    }
    x->body.append(data, n);
    return n;
  }
};

BatchApi::BatchApi(ClientConfig config, std::chrono::milliseconds timeout, std::function<bool()> stopping)
    : config_(std::move(config)),
      base_(trim_trailing_slashes(config_.base_url)),
      timeout_(timeout),
      stopping_(std::move(stopping)),
      curl_(curl_easy_init()) {
  if (curl_ == nullptr) throw std::runtime_error("curl_easy_init failed");
}

BatchApi::~BatchApi() { curl_easy_cleanup(curl_); }

ApiError BatchApi::protocol_problem(const std::string& what, const std::string& detail) const {
  ApiError e;
  e.kind = ErrorKind::protocol;
  e.error_class = ErrorClass::retryable;
  e.message = "invalid " + what + " from the Batch API: " + detail;
  return e;
}

// An id the server gave that cannot go into a path: asking again would not change it.
ApiError BatchApi::unusable_id(const std::string& what, const std::string& id) const {
  // Built by appending: g++ 12 at -O3 warns on `"'" + std::string&&` (-Wrestrict).
  std::string quoted = "'";
  quoted.append(id, 0, 64);
  quoted += '\'';
  ApiError e = protocol_problem(what, quoted);
  e.error_class = ErrorClass::task_fatal;
  return e;
}

Result<std::string, ApiError> BatchApi::call(const std::string& method, const std::string& path,
                                             const std::string& body, bool multipart_file,
                                             const std::string& filename,
                                             const std::function<void(std::string_view)>& on_data,
                                             long* status_out) {
  curl_easy_reset(curl_);
  Exchange x;
  x.curl = curl_;
  x.max_body = config_.http.max_body_bytes;
  x.on_data = &on_data;
  x.abort = config_.http.abort;
  x.stopping = &stopping_;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  const std::string url = base_ + path;
  std::string auth = "Authorization: Bearer ";
  auth += config_.api_key;
  std::string agent = "User-Agent: concurrent_bigmodel/";
  agent += kVersion;
  curl_slist* raw = nullptr;
  for (const std::string* h : {&auth, &agent}) raw = curl_slist_append(raw, h->c_str());
  raw = curl_slist_append(raw, "Accept: application/json");
  if (method == "POST" && !multipart_file) raw = curl_slist_append(raw, "Content-Type: application/json");
  if (!config_.accept_language.empty()) {
    std::string lang = "Accept-Language: ";
    lang += config_.accept_language;
    raw = curl_slist_append(raw, lang.c_str());
  }
  std::unique_ptr<curl_slist, SlistFree> headers(raw);
  std::unique_ptr<curl_mime, MimeFree> mime;

  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.http.connect_timeout.count()));
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, config_.http.low_speed_bytes);
  curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME, static_cast<long>(config_.http.low_speed_time.count()));
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Exchange::on_body);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &x);
  if (x.abort != nullptr || stopping_) {
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &Exchange::on_progress);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
  }
  if (multipart_file) {
    mime.reset(curl_mime_init(curl_));
    curl_mimepart* purpose = curl_mime_addpart(mime.get());
    curl_mime_name(purpose, "purpose");
    curl_mime_data(purpose, "batch", CURL_ZERO_TERMINATED);
    curl_mimepart* file = curl_mime_addpart(mime.get());
    curl_mime_name(file, "file");
    curl_mime_filename(file, filename.c_str());
    curl_mime_type(file, "application/jsonl");
    curl_mime_data(file, body.data(), body.size());
    curl_easy_setopt(curl_, CURLOPT_MIMEPOST, mime.get());
  } else if (method == "POST") {
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else {
    curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
  }

  const CURLcode code = curl_easy_perform(curl_);
  long status = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
  if (status_out != nullptr) *status_out = status;
  Result<HttpResponse, TransportError> sent = HttpResponse{};
  if (code != CURLE_OK) {
    TransportError t;
    if (x.too_large) {
      t.kind = TransportError::Kind::too_large;
      t.message = "answer larger than " + std::to_string(x.max_body) + " bytes";
    } else if (code == CURLE_ABORTED_BY_CALLBACK) {
      t.kind = TransportError::Kind::aborted;
      t.message = "the transfer was stopped";
    } else {
      t.kind = code == CURLE_OPERATION_TIMEDOUT ? TransportError::Kind::timeout : TransportError::Kind::connection;
      t.message = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
    }
    sent = Err{t};
    return Err{exchange_error(sent, config_.api_key)};
  }
  if (status < 200 || status >= 300) {
    HttpResponse resp;
    resp.status = status;
    resp.body = std::move(x.body);
    resp.content_type = "application/json";
    sent = std::move(resp);
    return Err{exchange_error(sent, config_.api_key)};
  }
  return std::move(x.body);
}

Result<FileObject, ApiError> BatchApi::upload(const std::string& filename, const std::string& content) {
  auto sent = call("POST", "/files", content, true, filename, {}, nullptr);
  if (!sent) return Err{sent.error()};
  auto file = parse_file_object(sent.value());
  if (!file) return Err{protocol_problem("file object", file.error())};
  return std::move(file.value());
}

Result<BatchObject, ApiError> BatchApi::create(const std::string& input_file_id,
                                               const std::map<std::string, std::string>& metadata) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("input_file_id");
  w.String(input_file_id.c_str());
  w.Key("endpoint");
  w.String(kBatchEndpoint.data(), static_cast<rapidjson::SizeType>(kBatchEndpoint.size()));
  w.Key("auto_delete_input_file");
  w.Bool(true);
  w.Key("metadata");
  w.StartObject();
  for (const auto& [k, v] : metadata) {
    w.Key(k.c_str());
    w.String(v.c_str());
  }
  w.EndObject();
  w.EndObject();
  auto sent = call("POST", "/batches", std::string(buf.GetString(), buf.GetSize()), false, "", {}, nullptr);
  if (!sent) return Err{sent.error()};
  auto batch = parse_batch_object(sent.value());
  if (!batch) return Err{protocol_problem("batch object", batch.error())};
  return std::move(batch.value());
}

Result<BatchObject, ApiError> BatchApi::retrieve(const std::string& batch_id) {
  if (!safe_id(batch_id)) return Err{unusable_id("batch id", batch_id)};
  auto sent = call("GET", "/batches/" + batch_id, "", false, "", {}, nullptr);
  if (!sent) return Err{sent.error()};
  auto batch = parse_batch_object(sent.value());
  if (!batch) return Err{protocol_problem("batch object", batch.error())};
  return std::move(batch.value());
}

Result<BatchObject, ApiError> BatchApi::cancel(const std::string& batch_id) {
  if (!safe_id(batch_id)) return Err{unusable_id("batch id", batch_id)};
  auto sent = call("POST", "/batches/" + batch_id + "/cancel", "{}", false, "", {}, nullptr);
  if (!sent) return Err{sent.error()};
  auto batch = parse_batch_object(sent.value());
  if (!batch) return Err{protocol_problem("batch object", batch.error())};
  return std::move(batch.value());
}

Result<ListPage<BatchObject>, ApiError> BatchApi::list_batches(const std::string& after) {
  std::string path = "/batches?limit=100";
  if (!after.empty()) {
    if (!safe_id(after)) return Err{unusable_id("batch list's last_id", after)};
    path += "&after=" + after;
  }
  auto sent = call("GET", path, "", false, "", {}, nullptr);
  if (!sent) return Err{sent.error()};
  auto page = parse_batch_list(sent.value());
  if (!page) return Err{protocol_problem("batch list", page.error())};
  return std::move(page.value());
}

Result<std::optional<ListPage<FileObject>>, ApiError> BatchApi::list_files(const std::string& after) {
  std::string path = "/files?purpose=batch&limit=100";
  if (!after.empty()) {
    if (!safe_id(after)) return Err{unusable_id("file list's last_id", after)};
    path += "&after=" + after;
  }
  long status = 0;
  auto sent = call("GET", path, "", false, "", {}, &status);
  if (!sent) {
    if (status == 404 || status == 405) return std::optional<ListPage<FileObject>>{};
    return Err{sent.error()};
  }
  auto page = parse_file_list(sent.value());
  if (!page) return Err{protocol_problem("file list", page.error())};
  return std::optional<ListPage<FileObject>>(std::move(page.value()));
}

Result<bool, ApiError> BatchApi::download(
    const std::string& file_id, const std::function<void(std::string_view)>& on_line,
    const std::function<void(std::string_view head, std::string_view tail)>& on_oversized) {
  if (!safe_id(file_id)) return Err{unusable_id("file id", file_id)};
  std::string pending;     // a line that spans chunks; of an oversized line, its head only
  bool oversized = false;  // the line in progress passed kBatchMaxOutputLine
  std::string tail;        // an oversized line's last kBatchLineEdge bytes so far
  const auto keep_tail = [&](std::string_view part) {
    if (part.size() >= kBatchLineEdge) {
      tail.assign(part.substr(part.size() - kBatchLineEdge));
      return;
    }
    tail.append(part);
    if (tail.size() > kBatchLineEdge) tail.erase(0, tail.size() - kBatchLineEdge);
  };
  const auto add = [&](std::string_view part) {
    if (!oversized && pending.size() + part.size() > kBatchMaxOutputLine) {
      oversized = true;
      keep_tail(pending);
      pending.resize(std::min(pending.size(), kBatchLineEdge));
      pending.append(part.substr(0, kBatchLineEdge - pending.size()));
    }
    if (oversized) {
      keep_tail(part);
    } else {
      pending.append(part);
    }
  };
  const auto end_line = [&] {
    if (oversized) {
      on_oversized(pending, tail);
    } else {
      if (!pending.empty() && pending.back() == '\r') pending.pop_back();
      if (!pending.empty()) on_line(pending);
    }
    pending.clear();
    tail.clear();
    oversized = false;
  };
  const std::function<void(std::string_view)> on_data = [&](std::string_view data) {
    for (std::size_t nl; (nl = data.find('\n')) != std::string_view::npos; data.remove_prefix(nl + 1)) {
      add(data.substr(0, nl));
      end_line();
    }
    add(data);
  };
  auto sent = call("GET", "/files/" + file_id + "/content", "", false, "", on_data, nullptr);
  if (!sent) return Err{sent.error()};
  if (!pending.empty() || oversized) end_line();
  return true;
}

}  // namespace cbm
