#include "async_http.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace cbm {

struct AsyncHttp::Slot {
  CURL* curl = nullptr;
  HttpRequest request;  // kept alive while libcurl sends its body
  HttpExchange exchange;
  bool busy = false;
};

AsyncHttp::AsyncHttp(HttpOptions options, std::size_t slots) : options_(options), multi_(curl_multi_init()) {
  if (multi_ == nullptr) throw std::runtime_error("curl_multi_init failed");
  options_.abort = nullptr;
  const long n = static_cast<long>(slots);
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, n);
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, n);
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, n);  // idle connections kept for reuse
  for (std::size_t i = 0; i < slots; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->curl = curl_easy_init();
    if (slot->curl == nullptr) throw std::runtime_error("curl_easy_init failed");
    slots_.push_back(std::move(slot));
  }
}

AsyncHttp::~AsyncHttp() {
  for (auto& s : slots_) {
    if (s->curl == nullptr) continue;
    if (s->busy) curl_multi_remove_handle(multi_, s->curl);
    curl_easy_cleanup(s->curl);
  }
  curl_multi_cleanup(multi_);
}

void AsyncHttp::start(std::size_t slot, HttpRequest request, std::chrono::milliseconds timeout) {
  Slot& s = *slots_.at(slot);
  if (s.busy) throw std::logic_error("AsyncHttp::start on a busy slot");
  if (timeout <= std::chrono::milliseconds::zero()) {
    ended_early_.push_back(Finished{slot, Err{deadline_passed()}});
    return;
  }
  s.request = std::move(request);
  s.exchange.start(s.curl, s.request, options_, timeout);
  curl_easy_setopt(s.curl, CURLOPT_PRIVATE, reinterpret_cast<void*>(slot));
  if (s.request.url.starts_with("https:")) curl_easy_setopt(s.curl, CURLOPT_PIPEWAIT, 1L);  // multiplex, not dial
  if (const CURLMcode rc = curl_multi_add_handle(multi_, s.curl); rc != CURLM_OK) {
    (void)s.exchange.finish(s.curl, CURLE_FAILED_INIT);
    ended_early_.push_back(Finished{
        slot, Err{TransportError{TransportError::Kind::other,
                                 std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc)}}});
    return;
  }
  s.busy = true;
}

void AsyncHttp::cancel(std::size_t slot) {
  Slot& s = *slots_.at(slot);
  std::erase_if(ended_early_, [slot](const Finished& f) { return f.slot == slot; });
  if (!s.busy) return;
  curl_multi_remove_handle(multi_, s.curl);
  (void)s.exchange.finish(s.curl, CURLE_ABORTED_BY_CALLBACK);
  s.busy = false;
}

bool AsyncHttp::busy(std::size_t slot) const { return slots_.at(slot)->busy; }

bool AsyncHttp::wait(std::chrono::milliseconds timeout, int wake_fd) {
  if (!ended_early_.empty()) return false;
  curl_waitfd extra{wake_fd, CURL_WAIT_POLLIN, 0};
  const int ms = static_cast<int>(std::clamp<std::int64_t>(timeout.count(), 0, 1 << 30));
  if (const CURLMcode rc = curl_multi_poll(multi_, &extra, 1, ms, nullptr); rc != CURLM_OK) {
    throw std::runtime_error(std::string("curl_multi_poll: ") + curl_multi_strerror(rc));
  }
  return (extra.revents & CURL_WAIT_POLLIN) != 0;
}

void AsyncHttp::take_finished(std::vector<Finished>& out) {
  out.clear();
  std::swap(out, ended_early_);
  int running = 0;
  if (const CURLMcode rc = curl_multi_perform(multi_, &running); rc != CURLM_OK) {
    throw std::runtime_error(std::string("curl_multi_perform: ") + curl_multi_strerror(rc));
  }
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    void* tag = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &tag);
    const auto slot = reinterpret_cast<std::size_t>(tag);
    Slot& s = *slots_.at(slot);
    const CURLcode code = msg->data.result;  // msg is invalid once its handle is removed
    curl_multi_remove_handle(multi_, s.curl);
    s.busy = false;
    out.push_back(Finished{slot, s.exchange.finish(s.curl, code)});
  }
}

}  // namespace cbm
