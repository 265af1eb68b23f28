// AsyncHttp: many HTTP exchanges at once on one thread, with curl_multi. A fixed pool of easy handles,
// one per slot, reused from exchange to exchange (their connections stay in the multi handle's cache:
// keep-alive); connections are bounded by the slot count, and HTTP/2 streams are multiplexed over one
// connection where the server offers HTTP/2 (over TLS). Each exchange is set up by HttpExchange, as in
// the blocking HttpClient: the same timeouts, limits, body cap and headers.
//
// Passive, like ninja's SubprocessSet: the caller's loop calls wait() (which also watches one fd of
// the caller's, e.g. a wake-up eventfd), then take_finished(). Not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
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
  AsyncHttp(HttpOptions options, std::size_t slots);
  ~AsyncHttp();
  AsyncHttp(const AsyncHttp&) = delete;
  AsyncHttp& operator=(const AsyncHttp&) = delete;

  // POSTs `request` on `slot`, which must be idle; the exchange must end within `timeout`, else it
  // finishes with a timeout error (at once when `timeout` is not positive).
  void start(std::size_t slot, HttpRequest request, std::chrono::milliseconds timeout);
  // Abandons the slot's exchange, if any: it reports no result and the slot is idle again.
  void cancel(std::size_t slot);
  bool busy(std::size_t slot) const;

  // Sleeps until an exchange can make progress, `wake_fd` becomes readable, or `timeout` passes;
  // true when `wake_fd` is readable (the caller drains it).
  bool wait(std::chrono::milliseconds timeout, int wake_fd);
  // Moves the transfers on and appends the exchanges that ended to `out` (cleared first).
  void take_finished(std::vector<Finished>& out);

 private:
  struct Slot;

  HttpOptions options_;
  CURLM* multi_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Finished> ended_early_;  // exchanges that ended before reaching libcurl
};

}  // namespace cbm
