#include "http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <list>
#include <mutex>
#include <stdexcept>

namespace cbm {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using ErrorCode = boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
// After an answer that closes the connection, what the client still sends is read and dropped for
// this long, so that closing with unread input does not reset the connection under the answer.
constexpr std::chrono::seconds kLinger{5};
// Out of descriptors: accepting pauses instead of spinning.
constexpr std::chrono::milliseconds kAcceptBackoff{50};

std::string error_body(std::string_view message) {
  std::string out = "{\"error\":\"";
  for (const char c : message) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"}";
}

bool is_http_parse_error(const ErrorCode& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

class Session;

}  // namespace

class HttpServerState {
 public:
  explicit HttpServerState(HttpServer::Limits l) : limits(l) {}

  net::io_context context{1};
  tcp::acceptor acceptor{context};
  net::steady_timer timer{context};  // accept backoff, then the stop's grace
  HttpServer::Limits limits;
  HttpServer::Handler handler;
  // The rest is touched only on the server's thread.
  bool stopping = false;
  std::size_t live = 0;
  std::list<std::weak_ptr<Session>> sessions;

  void accept();
  // Room for a connection from `peer`: true at once when under both caps, else after evicting a
  // connection still waiting for its request; false when none can be.
  bool make_room(const net::ip::address& peer);
  void begin_stop(std::chrono::milliseconds grace);
  void session_ended();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServerState& server) : stream_(std::move(socket)), server_(server) {
    ++server_.live;
    ErrorCode ec;
    peer_ = stream_.socket().remote_endpoint(ec).address();
  }

  const net::ip::address& peer() const { return peer_; }
  // Waiting for (the rest of) a request, or lingering after the last answer: nothing is lost by closing.
  bool evictable() const { return phase_ == Phase::reading || phase_ == Phase::lingering; }
  // Counted until its pending read completes with the close's error and ends it.
  bool open() const { return phase_ != Phase::ended && phase_ != Phase::evicted; }
  Clock::time_point waiting_since() const { return waiting_since_; }
  void evict() {
    ErrorCode ignored;
    stream_.socket().close(ignored);  // the pending read ends with an error: end() follows
    phase_ = Phase::evicted;          // neither a candidate nor counted while that completes
  }
  void set_gone_callback(std::function<void()> callback) { gone_ = std::move(callback); }

  void start() { read_header(); }
  net::any_io_executor executor() { return stream_.get_executor(); }

  // On the server's thread: the answer to the request being handled.
  void answer(HttpAnswer r) {
    if (phase_ != Phase::handling) return;
    phase_ = Phase::writing;
    gone_ = nullptr;
    if (watching_) {
      ErrorCode ignored;
      stream_.socket().cancel(ignored);  // the hang-up watch: its handler sees operation_aborted
    }
    response_ = {};
    response_.version(version_);
    response_.result(r.status);
    response_.set(http::field::content_type, r.content_type);
    if (!r.allow.empty()) response_.set(http::field::allow, r.allow);
    for (const auto& [name, value] : r.headers) response_.set(name, value);
    const std::size_t length = r.body.size();
    if (!head_) response_.body() = std::move(r.body);
    response_.keep_alive(keep_alive_ && !r.close && !server_.stopping);
    response_.prepare_payload();
    if (head_) response_.content_length(length);  // HEAD: the length of the body left out (RFC 9110 9.3.2)
    stream_.expires_after(server_.limits.read_timeout);  // a client that does not read its answer is dropped
    http::async_write(stream_, response_, [self = shared_from_this()](ErrorCode ec, std::size_t) {
      if (ec) return self->end();
      if (self->response_.keep_alive() && !self->server_.stopping) return self->read_header();
      self->linger();
    });
  }

  // The server stops: a connection that waits for its next request is closed.
  void close_if_idle() {
    if (phase_ == Phase::reading || phase_ == Phase::lingering) {
      ErrorCode ignored;
      stream_.socket().close(ignored);
    }
  }

 private:
  enum class Phase { reading, handling, writing, lingering, evicted, ended };

  void read_header() {
    phase_ = Phase::reading;
    waiting_since_ = Clock::now();
    head_ = false;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(server_.limits.max_body);
    stream_.expires_after(server_.limits.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](ErrorCode ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(ErrorCode ec) {
    if (ec) return on_read_error(ec);
    const auto method = parser_->get().method();
    head_ = method == http::verb::head;
    const bool has_body_semantics =
        method == http::verb::post || method == http::verb::put || method == http::verb::patch;
    if (has_body_semantics && !parser_->chunked() && !parser_->content_length()) {
      return reply_now({411, error_body("Content-Length required: a request body must say its length"),
                        "application/json", "", {}, true});
    }
    stream_.expires_after(server_.limits.read_timeout);
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_ = {http::status::continue_, parser_->get().version()};
      http::async_write(stream_, continue_, [self = shared_from_this()](ErrorCode ec2, std::size_t) {
        if (ec2) return self->end();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](ErrorCode ec, std::size_t) { self->on_request(ec); });
  }

  void on_read_error(ErrorCode ec) {
    // The client closed (or half-closed) between requests: it is done, nothing is malformed.
    if (ec == http::error::end_of_stream) return end();
    if (ec == http::error::body_limit) {
      return reply_now({413, error_body("request body larger than " + std::to_string(server_.limits.max_body) +
                                        " bytes"),
                        "application/json", "", {}, true});
    }
    if (ec == http::error::header_limit) {
      return reply_now({431, error_body("request header larger than " + std::to_string(kHeaderLimit) + " bytes"),
                        "application/json", "", {}, true});
    }
    if (is_http_parse_error(ec)) {
      return reply_now({400, error_body("malformed HTTP request: " + ec.message()), "application/json", "", {}, true});
    }
    end();  // the client closed, went silent past the read timeout, or reset
  }

  void on_request(ErrorCode ec) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    IncomingRequest request{std::string(req.method_string()), std::string(req.target()),
                            std::string(req[http::field::authorization]), std::move(req.body())};
    parser_.reset();
    phase_ = Phase::handling;
    stream_.expires_never();
    std::optional<HttpAnswer> now;
    try {
      now = server_.handler(request, HttpReply(std::make_shared<HttpReply::Target>(shared_from_this())));
    } catch (const std::exception& e) {
      now = HttpAnswer{500, error_body(std::string("internal error: ") + e.what()), "application/json", "", {}, true};
    }
    if (now) return answer(std::move(*now));
    if (gone_) watch_for_hangup();
  }

  // While the answer is pending: readable with nothing to read is the client's close (a reset is an
  // error); bytes are a pipelined request, left for after the answer.
  void watch_for_hangup() {
    watching_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](ErrorCode ec) {
      self->watching_ = false;
      if (ec == net::error::operation_aborted || self->phase_ != Phase::handling) return;
      char byte = 0;
      const ssize_t n = ec ? -1 : ::recv(self->stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) return;
      if (n < 0 && !ec && (errno == EAGAIN || errno == EWOULDBLOCK)) return self->watch_for_hangup();
      auto gone = std::move(self->gone_);
      self->end();
      if (gone) gone();
    });
  }

  void reply_now(HttpAnswer r) {
    keep_alive_ = false;
    version_ = parser_ ? parser_->get().version() : 11;
    if (version_ == 0) version_ = 11;
    phase_ = Phase::handling;
    answer(std::move(r));
  }

  // Half-closes and reads until the client closes (or kLinger passes), then ends.
  void linger() {
    phase_ = Phase::lingering;
    ErrorCode ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLinger);
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(scratch_), [self = shared_from_this()](ErrorCode ec, std::size_t) {
      if (ec) return self->end();
      self->drain();
    });
  }

  void end() {
    if (phase_ == Phase::ended) return;
    phase_ = Phase::ended;
    ErrorCode ignored;
    stream_.socket().close(ignored);
    server_.session_ended();
  }

  beast::tcp_stream stream_;
  HttpServerState& server_;
  Phase phase_ = Phase::reading;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::empty_body> continue_;
  http::response<http::string_body> response_;
  bool keep_alive_ = true;
  bool head_ = false;  // the request is a HEAD: its answer is the header alone
  net::ip::address peer_;
  Clock::time_point waiting_since_ = Clock::now();
  std::function<void()> gone_;  // the handler's on_client_gone
  bool watching_ = false;       // a hang-up watch is pending
  unsigned version_ = 11;
  char scratch_[4096];
};

}  // namespace

// Shared by the copies of one reply: the first send() takes the session (from any thread, while the
// server's thread may be registering its hang-up callback), so it is taken under a lock.
struct HttpReply::Target {
  explicit Target(std::shared_ptr<Session> s) : session(std::move(s)) {}
  std::mutex mu;
  std::shared_ptr<Session> session;
};

void HttpReply::on_client_gone(std::function<void()> callback) {
  if (!target_) return;
  std::lock_guard lock(target_->mu);
  if (target_->session) target_->session->set_gone_callback(std::move(callback));
}

void HttpReply::send(std::function<HttpAnswer()> make) {
  if (!target_) return;
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(target_->mu);
    session = std::move(target_->session);
  }
  target_.reset();
  if (!session) return;  // answered already through a copy
  // The session's last reference then lives on the server's thread.
  const auto executor = session->executor();
  net::post(executor, [session = std::move(session), make = std::move(make)] {
    try {
      session->answer(make());
    } catch (const std::exception& e) {
      session->answer({500, error_body(std::string("internal error: ") + e.what()), "application/json", "", {}, true});
    }
  });
}

void HttpServerState::accept() {
  acceptor.async_accept([this](ErrorCode ec, tcp::socket socket) {
    if (stopping || ec == net::error::operation_aborted) return;
    if (ec) {
      timer.expires_after(kAcceptBackoff);
      timer.async_wait([this](ErrorCode e) {
        if (!e) accept();
      });
      return;
    }
    sessions.remove_if([](const std::weak_ptr<Session>& s) { return s.expired(); });
    ErrorCode peer_error;
    const auto peer = socket.remote_endpoint(peer_error).address();
    if (!peer_error && make_room(peer)) {
      auto session = std::make_shared<Session>(std::move(socket), *this);
      sessions.push_back(session);
      session->start();
    }
    accept();
  });
}

bool HttpServerState::make_room(const net::ip::address& peer) {
  std::size_t open = 0;
  std::size_t from_peer = 0;
  std::shared_ptr<Session> oldest;       // the longest-waiting evictable connection
  std::shared_ptr<Session> oldest_peer;  // ... of this address
  for (const auto& weak : sessions) {
    auto s = weak.lock();
    if (!s || !s->open()) continue;
    ++open;
    const bool same = s->peer() == peer;
    from_peer += same ? 1 : 0;
    if (!s->evictable()) continue;
    if (!oldest || s->waiting_since() < oldest->waiting_since()) oldest = s;
    if (same && (!oldest_peer || s->waiting_since() < oldest_peer->waiting_since())) oldest_peer = s;
  }
  if (from_peer >= limits.max_connections_per_client) {
    if (!oldest_peer) return false;
    oldest_peer->evict();
    return true;
  }
  if (open >= limits.max_connections) {
    if (!oldest) return false;
    oldest->evict();
  }
  return true;
}

void HttpServerState::begin_stop(std::chrono::milliseconds grace) {
  stopping = true;
  ErrorCode ignored;
  acceptor.close(ignored);
  timer.cancel();
  for (auto& weak : sessions) {
    if (auto s = weak.lock()) s->close_if_idle();
  }
  if (live == 0) return;
  timer.expires_after(grace);
  timer.async_wait([this](ErrorCode ec) {
    if (!ec) context.stop();
  });
}

void HttpServerState::session_ended() {
  --live;
  if (stopping && live == 0) timer.cancel();
}

HttpServer::HttpServer(const ListenAddress& address, Limits limits)
    : state_(std::make_unique<HttpServerState>(limits)) {
  const std::string where = "'" + address.to_string() + "'";
  ErrorCode ec;
  tcp::resolver resolver(state_->context);
  const auto found = resolver.resolve(address.host, std::to_string(address.port),
                                      tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec) throw std::runtime_error(where + ": cannot resolve the host: " + ec.message());
  for (const auto& entry : found) {
    tcp::acceptor& a = state_->acceptor;
    ErrorCode step;
    a.open(entry.endpoint().protocol(), step);
    if (!step) a.set_option(net::socket_base::reuse_address(true), step);
    if (!step) a.bind(entry.endpoint(), step);
    if (!step) a.listen(net::socket_base::max_listen_connections, step);
    if (!step) break;
    ec = step;
    ErrorCode ignored;
    a.close(ignored);
  }
  if (!state_->acceptor.is_open()) throw std::runtime_error(where + ": cannot listen: " + ec.message());
  const tcp::endpoint bound = state_->acceptor.local_endpoint(ec);
  if (ec) throw std::runtime_error(where + ": " + ec.message());
  url_ = "http://" + ListenAddress{bound.address().to_string(), bound.port()}.to_string();
}

HttpServer::~HttpServer() { stop(std::chrono::milliseconds(0)); }

void HttpServer::start(Handler handler) {
  state_->handler = std::move(handler);
  state_->accept();
  thread_ = std::thread([this] {
    // A handler that throws loses its own connection, never the server.
    for (;;) {
      try {
        state_->context.run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "concurrent_bigmodel: HTTP handler failed: %s\n", e.what());
      }
    }
  });
}

void HttpServer::stop(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) {
    ErrorCode ignored;
    state_->acceptor.close(ignored);
    return;
  }
  net::post(state_->context, [state = state_.get(), grace] { state->begin_stop(grace); });
  thread_.join();
}

}  // namespace cbm
