// MetricsServer: the Prometheus scrape endpoint (--metrics-addr), served by HttpServer. It answers
// `GET /metrics` (and HEAD) with the document `render` returns at that moment, 404 for any other path
// and 405 for any other method; what is not HTTP gets HttpServer's 4xx.
//
// It can neither block nor crash the run: the server has a thread of its own, a request must arrive
// within 5 s, a request body beyond 64 KiB is refused and at most 16 connections are served at once
// (more are closed on accept). `render` is called on the server's thread and must be thread-safe; a
// render that throws is a 500 for that scrape.
#pragma once

#include <functional>
#include <string>

#include "http_server.hpp"
#include "listen_address.hpp"

namespace cbm {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  // Binds and listens on `address` and starts serving. Throws std::runtime_error naming the address
  // when it cannot (unknown host, port in use, no permission).
  MetricsServer(const ListenAddress& address, Render render);
  // Stops serving at once (open connections are dropped).
  ~MetricsServer() = default;
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // http://HOST:PORT/metrics with the port actually bound (the kernel's pick for port 0).
  const std::string& url() const { return url_; }

 private:
  Render render_;
  HttpServer server_;  // after render_: stopped (by its destructor) before render_ goes
  std::string url_;
};

}  // namespace cbm
