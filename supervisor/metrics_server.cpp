#include "metrics_server.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "unique_fd.hpp"

namespace cbm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxHead = 8192;
constexpr std::size_t kMaxConnections = 16;
constexpr std::chrono::seconds kConnectionTime{5};
constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

struct Connection {
  enum class State { reading, writing, draining };
  Connection(UniqueFd f, Clock::time_point d) : fd(std::move(f)), deadline(d) {}
  UniqueFd fd;
  Clock::time_point deadline;
  State state = State::reading;
  std::string in;
  std::string out;
  std::size_t sent = 0;
};

std::string response(std::string_view status, std::string_view type, std::string_view extra_headers,
                     const std::string& body, bool with_body) {
  std::string r = "HTTP/1.1 ";
  r += status;
  r += "\r\nContent-Type: ";
  r += type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra_headers;
  r += "Connection: close\r\n\r\n";
  if (with_body) r += body;
  return r;
}

std::string plain(std::string_view status, std::string_view extra_headers, const std::string& body) {
  return response(status, "text/plain; charset=utf-8", extra_headers, body, true);
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c <= ' ' || c >= 127 || std::strchr("()<>@,;:\\\"/[]?={}", c) != nullptr) return false;
  }
  return true;
}

// The whole answer to a request head (`head` ends before its blank line).
std::string answer(std::string_view head, const MetricsServer::Render& render) {
  const auto eol = head.find_first_of("\r\n");
  const std::string_view line = head.substr(0, eol);
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return plain("400 Bad Request", "", "bad request\n");
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method) || target.empty() || target.front() != '/' ||
      target.find_first_of(" \t") != std::string_view::npos ||
      (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return plain("400 Bad Request", "", "bad request\n");
  }
  if (method != "GET" && method != "HEAD") {
    return plain("405 Method Not Allowed", "Allow: GET, HEAD\r\n", "method not allowed: use GET\n");
  }
  if (target.substr(0, target.find('?')) != "/metrics") {
    return plain("404 Not Found", "", "not found: metrics are at /metrics\n");
  }
  try {
    return response("200 OK", kMetricsType, "", render(), method == "GET");
  } catch (const std::exception&) {
    return plain("500 Internal Server Error", "", "cannot render the metrics\n");
  }
}

// Where the request head ends (after its blank line), or npos while incomplete.
std::size_t head_end(const std::string& in) {
  const auto crlf = in.find("\r\n\r\n");
  const auto lf = in.find("\n\n");
  if (crlf != std::string::npos && (lf == std::string::npos || crlf < lf)) return crlf + 4;
  return lf == std::string::npos ? std::string::npos : lf + 2;
}

// Advances one connection as far as its socket allows; false once it is finished (to be closed).
bool step(Connection& c, const MetricsServer::Render& render) {
  char buf[4096];
  if (c.state == Connection::State::reading) {
    for (;;) {
      const ssize_t n = ::recv(c.fd.get(), buf, std::min(sizeof buf, kMaxHead + 1 - c.in.size()), 0);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
      const std::size_t end = head_end(c.in);
      if (end != std::string::npos || c.in.size() > kMaxHead) {
        c.out = end != std::string::npos
                    ? answer(std::string_view(c.in).substr(0, end), render)
                    : plain("431 Request Header Fields Too Large", "", "request too large\n");
        c.in = std::string();
        c.state = Connection::State::writing;
        break;
      }
    }
  }
  if (c.state == Connection::State::writing) {
    while (c.sent < c.out.size()) {
      const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        return false;
      }
      c.sent += static_cast<std::size_t>(n);
    }
    // Half-close, then read what the client still sends until it closes: closing with unread input
    // would reset the connection and could destroy the answer in flight.
    ::shutdown(c.fd.get(), SHUT_WR);
    c.state = Connection::State::draining;
  }
  if (c.state == Connection::State::draining) {
    for (;;) {
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n == 0) return false;
      if (n < 0) return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }
  return true;
}

std::string numeric_host(const sockaddr_storage& addr, socklen_t len) {
  char host[NI_MAXHOST];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof host, nullptr, 0,
                    NI_NUMERICHOST) != 0) {
    return "?";
  }
  return host;
}

}  // namespace

MetricsServer::MetricsServer(const ListenAddress& address, Render render) : render_(std::move(render)) {
  const std::string where = "'" + address.to_string() + "'";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error(where + ": cannot resolve the host: " + ::gai_strerror(rc));
  }
  int error = 0;
  UniqueFd listener(-1);
  for (const addrinfo* ai = found; ai != nullptr && listener.get() < 0; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      error = errno;
      continue;
    }
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 16) != 0) {
      error = errno;
      continue;
    }
    listener = std::move(fd);
  }
  ::freeaddrinfo(found);
  if (listener.get() < 0) throw std::runtime_error(where + ": cannot listen: " + std::strerror(error));

  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    throw std::runtime_error(where + ": getsockname: " + std::strerror(errno));
  }
  const std::uint16_t bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(bound).sin6_port
                                        : reinterpret_cast<const sockaddr_in&>(bound).sin_port);
  url_ = "http://" + ListenAddress{numeric_host(bound, len), bound_port}.to_string() + "/metrics";

  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (stop.get() < 0) throw std::runtime_error(where + ": eventfd: " + std::strerror(errno));
  listen_fd_ = listener.release();
  stop_fd_ = stop.release();
  thread_ = std::thread([this] {
    try {
      serve();
    } catch (const std::exception&) {
      // Out of memory while serving: scrapes fail from now on (the target shows as down); the run goes on.
    }
  });
}

MetricsServer::~MetricsServer() {
  const std::uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof one) < 0) {
    // An eventfd write fails only when its counter would overflow: serve() is being told already.
  }
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_fd_);
}

void MetricsServer::serve() {
  std::vector<Connection> connections;
  std::vector<pollfd> fds;
  // After an accept() failure that persists (out of descriptors), accepting pauses instead of spinning.
  auto accept_paused_until = Clock::time_point::min();
  for (;;) {
    const bool accepting = Clock::now() >= accept_paused_until;
    fds.assign({{stop_fd_, POLLIN, 0}, {listen_fd_, static_cast<short>(accepting ? POLLIN : 0), 0}});
    auto next_deadline = accepting ? Clock::time_point::max() : accept_paused_until;
    for (const auto& c : connections) {
      fds.push_back(
          {c.fd.get(), static_cast<short>(c.state == Connection::State::writing ? POLLOUT : POLLIN), 0});
      next_deadline = std::min(next_deadline, c.deadline);
    }
    int timeout = -1;
    if (next_deadline != Clock::time_point::max()) {
      timeout = static_cast<int>(std::max<std::int64_t>(
          0, std::chrono::ceil<std::chrono::milliseconds>(next_deadline - Clock::now()).count()));
    }
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) return;

    for (std::size_t i = 0; i < connections.size(); ++i) {
      if (fds[i + 2].revents != 0 && !step(connections[i], render_))
        connections[i].deadline = Clock::time_point::min();
    }
    const auto now = Clock::now();
    std::erase_if(connections, [&](const Connection& c) { return c.deadline <= now; });

    if ((fds[1].revents & POLLIN) != 0) {
      for (std::size_t accepted = 0; accepted < kMaxConnections; ++accepted) {
        UniqueFd fd(::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (fd.get() < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
            accept_paused_until = now + std::chrono::milliseconds(100);
          }
          break;
        }
        if (connections.size() >= kMaxConnections) continue;  // too many at once: closed unanswered
        connections.emplace_back(std::move(fd), now + kConnectionTime);
      }
    }
  }
}

}  // namespace cbm
