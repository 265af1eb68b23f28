#include "redis_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string_view>
#include <stdexcept>

#include "simulator.hpp"

namespace cbm::test {
namespace {

// A port nothing listens on now (the kernel's pick for a socket bound to port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// redis-server on the PATH (posix_spawn does not search it); Debian's place when it is not there.
std::string redis_server_path() {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const std::filesystem::path candidate = std::filesystem::path(dirs.substr(0, colon)) / "redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
  }
  return "/usr/bin/redis-server";
}

bool answers_ping(int port) {
  try {
    return raw_exchange(port, "PING\r\n").rfind("+PONG", 0) == 0;
  } catch (const std::exception&) {
    return false;  // not listening yet
  }
}

}  // namespace

RedisServer::RedisServer(std::vector<std::string> extra_args) : extra_args_(std::move(extra_args)) {
  // Another process may take the port between the pick and the bind: pick again.
  for (int tries = 0;; ++tries) {
    port_ = free_port();
    try {
      start();
      return;
    } catch (const std::exception&) {
      if (tries == 4) throw;
    }
  }
}

RedisServer::~RedisServer() {
  if (!process_) return;
  process_->signal(SIGTERM);
  if (!process_->wait_for(std::chrono::seconds(5))) process_->signal(SIGKILL);
}

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

void RedisServer::kill() {
  if (!process_) return;
  process_->signal(SIGKILL);
  process_->wait_for(std::chrono::seconds(5));
  process_.reset();
}

void RedisServer::shutdown() {
  if (!process_) return;
  process_->signal(SIGTERM);
  const auto status = process_->wait_for(std::chrono::seconds(30));
  process_.reset();
  if (!status || *status != 0) throw std::runtime_error("redis-server did not shut down cleanly");
}

void RedisServer::start() {
  std::vector<std::string> argv = {redis_server_path(), "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                   "--dir", dir_.path().string(), "--appendonly", "yes", "--save", "",
                                   "--daemonize", "no", "--logfile", (dir_ / "redis.log").string()};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  SpawnOptions opts;
  opts.output_dir = dir_.path();
  process_ = std::make_unique<Subprocess>(argv, opts);
  bool exited = false;
  const bool up = eventually(
      [&] {
        exited = process_->wait_for(std::chrono::milliseconds(0)).has_value();  // say, the port was taken
        return exited || answers_ping(port_);
      },
      std::chrono::seconds(10));
  if (!up || exited) {
    std::string log = std::filesystem::exists(dir_ / "redis.log") ? read_text(dir_ / "redis.log") : "";
    kill();
    throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) + ": " + log);
  }
}

}  // namespace cbm::test
