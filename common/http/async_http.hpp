// AsyncHttp: many HTTP exchanges at once on one thread, with curl_multi. A fixed pool of easy handles,
// one per slot, reused from exchange to exchange (their connections stay in the multi handle's cache:
// keep-alive); connections are bounded by the slot count, and HTTP/2 streams are multiplexed over one
// connection where the server offers HTTP/2 (over TLS). Each exchange is set up by HttpExchange, as in
// the blocking HttpClient: the same timeouts, limits, body cap and headers.
//
// Passive, like ninja's SubprocessSet: the caller's loop calls wait() (which also watches one fd of
// the caller's, e.g. a wake-up eventfd), then take_finished(). Sockets are watched with epoll and
// driven by curl_multi_socket_action, so a wake-up costs what its ready sockets cost, not a pass over
// every transfer (1,000 in flight stay cheap). Not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "http_client.hpp"

typedef void CURLM;  // NOLINT: libcurl's own spelling

namespace cbm {

class AsyncHttp {
 public:
  struct Finished {
    std::size_t slot;
    Result<HttpResponse, TransportError> result;
  };

  // `slots` exchanges may run at once; `options.abort` is ignored (the caller cancels instead).
  // `wake_fd` (the caller's, e.g. an eventfd) ends a wait() when it becomes readable.
  AsyncHttp(HttpOptions options, std::size_t slots, int wake_fd);
  ~AsyncHttp();
  AsyncHttp(const AsyncHttp&) = delete;
  AsyncHttp& operator=(const AsyncHttp&) = delete;

  // POSTs `request` on `slot`, which must be idle; the exchange must end within `timeout`, else it
  // finishes with a timeout error (at once when `timeout` is not positive).
  void start(std::size_t slot, HttpRequest request, std::chrono::milliseconds timeout);
  // Abandons the slot's exchange, if any: it reports no result and the slot is idle again.
  void cancel(std::size_t slot);

  // Sleeps until a transfer's socket or timer is due, `wake_fd` becomes readable, or `timeout`
  // passes, and moves the due transfers on; true when `wake_fd` is readable (the caller drains it).
  bool wait(std::chrono::milliseconds timeout);
  // The exchanges that ended since the last call, into `out` (cleared first).
  void take_finished(std::vector<Finished>& out);

 private:
  struct Slot;
  static int on_socket(void* easy, int fd, int what, void* self, void* socket_data);
  static int on_timer(void* multi, long timeout_ms, void* self);
  void socket_action(int fd, int events);
  void release();

  HttpOptions options_;
  const int wake_fd_;
  int epoll_fd_;
  CURLM* multi_;
  std::optional<std::chrono::steady_clock::time_point> curl_timer_;  // when libcurl wants to be called
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Finished> ended_early_;  // exchanges that ended before reaching libcurl
};

}  // namespace cbm
