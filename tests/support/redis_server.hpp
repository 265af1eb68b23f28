// Test support: a real redis-server (Debian's 7.0) as a fixture, on 127.0.0.1 at a free port, its data
// (AOF on) in a temp dir of its own. Fleet tests start one each.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace cbm::test {

class RedisServer {
 public:
  // Starts the server and waits until it answers PING; throws (with its log) when it does not.
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:PORT/0
  // Ends the server (SIGKILL: nothing flushed beyond what the AOF already holds) / starts it again on
  // the same port and data.
  void kill();
  void start();
  // Ends the server as SHUTDOWN does (SIGTERM: the AOF written and synced), and waits for it to exit.
  void shutdown();

 private:
  TempDir dir_;
  std::vector<std::string> extra_args_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
};

}  // namespace cbm::test
