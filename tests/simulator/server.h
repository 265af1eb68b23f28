#pragma once

#include <boost/asio/basic_signal_set.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "options.h"
#include "simulator_state.h"

namespace simulator {

// Listens and hands each connection to a Session. One io_context per io thread, each run by exactly one
// thread: sessions are spread round-robin and never need strands. The acceptor and the signal set live on
// the first context, which the thread calling run() drives.
class Server {
 public:
  // Binds and listens; throws std::runtime_error saying why when the address is unusable.
  explicit Server(const Options& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  boost::asio::ip::tcp::endpoint endpoint() const { return acceptor_->local_endpoint(); }

  // Serves until SIGINT or SIGTERM, then returns at once, abandoning open connections.
  void run();

 private:
  using Executor = boost::asio::io_context::executor_type;
  using Acceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, Executor>;
  using Timer =
      boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                        boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;
  using SignalSet = boost::asio::basic_signal_set<Executor>;

  void accept();
  void stop();

  SimulatorState state_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<Executor>> keep_running_;
  std::optional<Acceptor> acceptor_;
  std::optional<Timer> accept_backoff_;
  std::optional<SignalSet> signals_;
  std::size_t next_context_ = 0;
};

}  // namespace simulator
