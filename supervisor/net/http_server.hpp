// HttpServer: a small HTTP/1.1 server (Boost.Beast) on one thread of its own: the one our servers
// share (the service, serve.hpp, and the Prometheus endpoint, metrics_server.hpp).
//
// It binds when made (so a port in use is reported before anything else starts) and serves once
// started. Every request goes to one handler, which answers at once or later: it may keep the
// HttpReply and answer from any thread (a request that waits for its batch's results). An answer to a
// HEAD request goes out as its header alone, with the length of the body it leaves out. Bounded: a
// request header of at most 16 KiB (431 beyond), a body of at most `max_body` bytes (413 beyond;
// `Expect: 100-continue` is honoured). What is not HTTP gets 400; a POST, PUT or PATCH that gives
// neither Content-Length nor chunked framing gets 411 and the connection is closed (its body would
// otherwise be read as the next request).
//
// Hostile clients: a request's header must arrive within `header_timeout` of the connection being
// ready for it (an idle kept-alive connection included), its body within `read_timeout` more; else the
// connection is closed. At most `max_connections` connections at once and `max_connections_per_client`
// from one address: a connection past either cap evicts the longest-waiting connection that has not
// yet sent a whole request (of the same address, for the per-address cap), and is refused only when
// every connection is busy with a request. So connections that trickle their headers can never lock
// out a quick request such as /healthz. Connections are kept alive unless the client or the answer
// says not.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "listen_address.hpp"

namespace cbm {

class HttpServerState;

struct IncomingRequest {
  std::string method;
  std::string target;  // as sent: path and query
  std::string authorization;  // the Authorization header; empty when absent
  std::string body;
};

struct HttpAnswer {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string allow;   // the Allow header of a 405, else empty
  std::vector<std::pair<std::string, std::string>> headers;  // any other header (Retry-After...)
  bool close = false;  // close the connection after this answer
};

// Answers one request, once, from any thread. `make` runs on the server's thread, so a caller that
// holds a lock pays only for handing it over. A request whose client went away is answered into the
// void.
class HttpReply {
 public:
  struct Target;
  explicit HttpReply(std::shared_ptr<Target> target) : target_(std::move(target)) {}
  void send(std::function<HttpAnswer()> make);
  // Called (on the server's thread) if the client closes or resets its connection before the answer
  // is sent. Only from the handler that received this reply, before it returns. A client that sends
  // more (a pipelined request) while it waits is not watched further.
  void on_client_gone(std::function<void()> callback);

 private:
  std::shared_ptr<Target> target_;
};

class HttpServer {
 public:
  struct Limits {
    std::size_t max_body = 8 * 1024 * 1024;
    std::chrono::milliseconds header_timeout{10000};
    std::chrono::milliseconds read_timeout{30000};  // the body, after the header
    std::size_t max_connections = 256;
    std::size_t max_connections_per_client = 64;
  };
  // The answer now, or nullopt when the handler keeps `reply` to answer later.
  using Handler = std::function<std::optional<HttpAnswer>(const IncomingRequest&, HttpReply reply)>;

  // Throws std::runtime_error naming the address when it cannot listen there.
  HttpServer(const ListenAddress& address, Limits limits);
  ~HttpServer();  // stop(0) if still serving
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // http://HOST:PORT with the port actually bound (the kernel's pick for port 0).
  const std::string& url() const { return url_; }

  // Starts the server's thread. `handler` runs on it and must outlive stop().
  void start(Handler handler);
  // Stops accepting and closes idle connections; answers still to come are written (their connections
  // then closed) for up to `grace`, after which everything is dropped. Returns when the thread is done.
  void stop(std::chrono::milliseconds grace);

 private:
  std::unique_ptr<HttpServerState> state_;
  std::string url_;
  std::thread thread_;
};

}  // namespace cbm
