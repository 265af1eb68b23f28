#include "async_http.hpp"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <system_error>

namespace cbm {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// epoll_event.data of the caller's wake fd; sockets carry their own fd (never negative).
constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};

}  // namespace

struct AsyncHttp::Slot {
  CURL* curl = nullptr;
  HttpRequest request;  // kept alive while libcurl sends its body
  HttpExchange exchange;
  bool busy = false;
};

AsyncHttp::AsyncHttp(HttpOptions options, std::size_t slots, int wake_fd)
    : options_(options), wake_fd_(wake_fd), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)), multi_(nullptr) {
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  options_.abort = nullptr;
  try {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
      throw std::system_error(errno, std::generic_category(), "epoll_ctl ADD");
    }
    multi_ = curl_multi_init();
    if (multi_ == nullptr) throw std::runtime_error("curl_multi_init failed");
    const long n = static_cast<long>(slots);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &AsyncHttp::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &AsyncHttp::on_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, n);
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, n);
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, n);  // idle connections kept for reuse
    for (std::size_t i = 0; i < slots; ++i) {
      slots_.push_back(std::make_unique<Slot>());
      slots_.back()->curl = curl_easy_init();
      if (slots_.back()->curl == nullptr) throw std::runtime_error("curl_easy_init failed");
    }
  } catch (...) {
    release();
    throw;
  }
}

AsyncHttp::~AsyncHttp() { release(); }

// In this order: transfers out of the multi handle, easy handles, the multi handle (closing its cached
// connections calls on_socket, so epoll goes last).
void AsyncHttp::release() {
  for (auto& s : slots_) {
    if (s->curl == nullptr) continue;
    if (s->busy) curl_multi_remove_handle(multi_, s->curl);
    curl_easy_cleanup(s->curl);
  }
  slots_.clear();
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  multi_ = nullptr;
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  epoll_fd_ = -1;
}

int AsyncHttp::on_socket(void* /*easy*/, int fd, int what, void* self, void* socket_data) {
  auto* http = static_cast<AsyncHttp*>(self);
  if (what == CURL_POLL_REMOVE) {
    ::epoll_ctl(http->epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);  // may be closed already: no matter
    return 0;
  }
  epoll_event ev{};
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
  ev.data.u64 = static_cast<std::uint64_t>(fd);
  // socket_data marks a socket epoll already watches (libcurl keeps it per socket for us).
  const int op = socket_data != nullptr ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (::epoll_ctl(http->epoll_fd_, op, fd, &ev) != 0) return -1;  // libcurl fails that transfer
  if (socket_data == nullptr) curl_multi_assign(http->multi_, fd, http);
  return 0;
}

int AsyncHttp::on_timer(void* /*multi*/, long timeout_ms, void* self) {
  auto* http = static_cast<AsyncHttp*>(self);
  if (timeout_ms < 0) {
    http->curl_timer_.reset();
  } else {
    http->curl_timer_ = SteadyClock::now() + milliseconds(timeout_ms);
  }
  return 0;
}

void AsyncHttp::socket_action(int fd, int events) {
  int running = 0;
  if (const CURLMcode rc = curl_multi_socket_action(multi_, fd, events, &running); rc != CURLM_OK) {
    throw std::runtime_error(std::string("curl_multi_socket_action: ") + curl_multi_strerror(rc));
  }
}

void AsyncHttp::start(std::size_t slot, HttpRequest request, milliseconds timeout) {
  Slot& s = *slots_.at(slot);
  if (s.busy) throw std::logic_error("AsyncHttp::start on a busy slot");
  if (timeout <= milliseconds::zero()) {
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

bool AsyncHttp::wait(milliseconds timeout) {
  if (!ended_early_.empty()) timeout = milliseconds::zero();
  if (curl_timer_) {
    timeout = std::min(timeout, std::chrono::ceil<milliseconds>(*curl_timer_ - SteadyClock::now()));
  }
  const int ms = static_cast<int>(std::clamp<std::int64_t>(timeout.count(), 0, 1 << 30));
  epoll_event events[256];
  const int n = ::epoll_wait(epoll_fd_, events, 256, ms);
  if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_wait");
  bool woken = false;
  for (int k = 0; k < n; ++k) {
    if (events[k].data.u64 == kWakeTag) {
      woken = true;
      continue;
    }
    const std::uint32_t e = events[k].events;
    const int flags = ((e & EPOLLIN) != 0 ? CURL_CSELECT_IN : 0) | ((e & EPOLLOUT) != 0 ? CURL_CSELECT_OUT : 0) |
                      ((e & (EPOLLERR | EPOLLHUP)) != 0 ? CURL_CSELECT_ERR : 0);
    socket_action(static_cast<int>(events[k].data.u64), flags);
  }
  if (curl_timer_ && SteadyClock::now() >= *curl_timer_) {
    curl_timer_.reset();
    socket_action(CURL_SOCKET_TIMEOUT, 0);
  }
  return woken;
}

void AsyncHttp::take_finished(std::vector<Finished>& out) {
  out.clear();
  std::swap(out, ended_early_);
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
