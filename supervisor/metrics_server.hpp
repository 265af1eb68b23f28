// MetricsServer: a minimal HTTP/1.1 server for Prometheus scrapes (--metrics-addr). It answers
// `GET /metrics` (and HEAD) with the document `render` returns at that moment, 404 for any other path,
// 405 for any other method and 400 for what is not HTTP; every connection is closed after its answer.
//
// It runs on a thread of its own with one poll() loop, and can neither block nor crash the run: sockets
// are non-blocking, a request is bounded (8 KiB of head, the body ignored), a connection that has not
// been answered and drained within 5 s is dropped, and at most 16 are served at once (more are closed on
// accept). `render` is called on the server's thread and must be thread-safe.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include "listen_address.hpp"

namespace cbm {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  // Binds and listens on `address` and starts serving. Throws std::runtime_error naming the address
  // when it cannot (unknown host, port in use, no permission).
  MetricsServer(const ListenAddress& address, Render render);
  // Stops serving and joins the thread (at once: open connections are dropped).
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // http://HOST:PORT/metrics with the port actually bound (the kernel's pick for port 0).
  const std::string& url() const { return url_; }

 private:
  void serve();

  Render render_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: written by the destructor to end serve()
  std::string url_;
  std::thread thread_;
};

}  // namespace cbm
