// The scrape endpoint in process: its answers over a real socket, byte for byte where they matter.
#include "metrics_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <stdexcept>

#include "unique_fd.hpp"

namespace {

std::uint16_t port_of(const std::string& url) {
  const auto colon = url.rfind(':');
  return static_cast<std::uint16_t>(std::stoi(url.substr(colon + 1)));
}

// Sends `request`, half-closes, and returns everything the server answers before it closes (bounded: 5 s).
std::string scrape_exchange(std::uint16_t port, const std::string& request) {
  cbm::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.get() >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  ::shutdown(fd.get(), SHUT_WR);
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  return reply;
}

const cbm::ListenAddress kAnyPort{"127.0.0.1", 0};

}  // namespace

TEST_CASE("a scrape gets the rendered document as Prometheus text, and nothing after it",
          "[metrics_server]") {
  cbm::MetricsServer server(kAnyPort, [] { return std::string("cbm_up 1\n"); });
  CHECK_THAT(server.url(), Catch::StartsWith("http://127.0.0.1:") && Catch::EndsWith("/metrics"));
  const std::string reply =
      scrape_exchange(port_of(server.url()), "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_THAT(reply, Catch::StartsWith("HTTP/1.1 200 OK\r\n") &&
                        Catch::Contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") &&
                        Catch::Contains("\r\nContent-Length: 9\r\n") &&
                        Catch::EndsWith("\r\n\r\ncbm_up 1\n"));
}

TEST_CASE("a HEAD scrape gets the header alone, with the document's length", "[metrics_server]") {
  cbm::MetricsServer server(kAnyPort, [] { return std::string("cbm_up 1\n"); });
  const std::string reply = scrape_exchange(port_of(server.url()), "HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK_THAT(reply, Catch::StartsWith("HTTP/1.1 200 OK\r\n") &&
                        Catch::Contains("\r\nContent-Length: 9\r\n") && Catch::EndsWith("\r\n\r\n"));
}

TEST_CASE("what is not a scrape gets a 4xx naming why", "[metrics_server]") {
  cbm::MetricsServer server(kAnyPort, [] { return std::string("cbm_up 1\n"); });
  const std::uint16_t port = port_of(server.url());
  CHECK_THAT(scrape_exchange(port, "GET /nope HTTP/1.1\r\n\r\n"), Catch::StartsWith("HTTP/1.1 404 "));
  CHECK_THAT(scrape_exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
             Catch::StartsWith("HTTP/1.1 405 ") && Catch::Contains("\r\nAllow: GET, HEAD\r\n"));
  CHECK_THAT(scrape_exchange(port, "\x16\x03\x01 garbage\r\n\r\n"), Catch::StartsWith("HTTP/1.1 400 "));
  CHECK_THAT(scrape_exchange(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a')),
             Catch::StartsWith("HTTP/1.1 431 "));
}

TEST_CASE("a render that throws fails that scrape only", "[metrics_server]") {
  bool fail = true;
  cbm::MetricsServer server(kAnyPort, [&fail]() -> std::string {
    if (std::exchange(fail, false)) throw std::runtime_error("no");
    return "cbm_up 1\n";
  });
  CHECK_THAT(scrape_exchange(port_of(server.url()), "GET /metrics HTTP/1.1\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 500 "));
  CHECK_THAT(scrape_exchange(port_of(server.url()), "GET /metrics HTTP/1.1\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 200 "));
}

TEST_CASE("a port in use is refused when the server is made, naming the address", "[metrics_server]") {
  cbm::MetricsServer first(kAnyPort, [] { return std::string(); });
  const cbm::ListenAddress taken{"127.0.0.1", port_of(first.url())};
  CHECK_THROWS_WITH(cbm::MetricsServer(taken, [] { return std::string(); }),
                    Catch::Contains("'" + taken.to_string() + "'") && Catch::Contains("in use"));
}
