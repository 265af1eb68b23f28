#include "server.h"

#include <boost/asio/ip/address.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

#include "session.h"

namespace simulator {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Out of descriptors: give the pending connections' owners a moment instead of spinning on accept().
constexpr auto kAcceptBackoff = std::chrono::milliseconds(50);

// Runs `context` until stopped. A handler that throws loses its own connection, never the server.
void run_until_stopped(net::io_context& context) {
  for (;;) {
    try {
      context.run();
      return;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bigmodel_simulator: request handler failed: %s\n", e.what());
    }
  }
}

}  // namespace

Server::Server(const Options& options) : state_(options) {
  for (unsigned i = 0; i < options.threads; ++i) {
    // Concurrency hint 1: each context is run by one thread, which lets Asio skip some locking.
    contexts_.push_back(std::make_unique<net::io_context>(1));
    keep_running_.push_back(net::make_work_guard(*contexts_.back()));
  }
  net::io_context& first = *contexts_.front();

  boost::system::error_code ec;
  const auto fail_if = [&ec](const std::string& what) {
    if (ec) throw std::runtime_error(what + ": " + ec.message());
  };
  const auto address = net::ip::make_address(options.host, ec);
  fail_if("bad --host '" + options.host + "'");
  const tcp::endpoint endpoint(address, options.port);
  const std::string where = options.host + ":" + std::to_string(options.port);
  acceptor_.emplace(first.get_executor());
  acceptor_->open(endpoint.protocol(), ec);
  fail_if("cannot open a socket");
  acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  fail_if("cannot set SO_REUSEADDR");
  acceptor_->bind(endpoint, ec);
  fail_if("cannot bind " + where);
  acceptor_->listen(net::socket_base::max_listen_connections, ec);
  fail_if("cannot listen on " + where);

  accept_backoff_.emplace(first.get_executor());
  signals_.emplace(first.get_executor(), SIGINT, SIGTERM);
  signals_->async_wait([this](const boost::system::error_code& signal_ec, int) {
    if (!signal_ec) stop();
  });
  accept();
}

// Sockets accepted on the first context may belong to the others, so the first is destroyed first; every
// io object goes before its context.
Server::~Server() {
  keep_running_.clear();
  signals_.reset();
  accept_backoff_.reset();
  acceptor_.reset();
  for (auto& context : contexts_) context.reset();
}

void Server::run() {
  std::vector<std::jthread> threads;
  for (std::size_t i = 1; i < contexts_.size(); ++i) {
    threads.emplace_back([context = contexts_[i].get()] { run_until_stopped(*context); });
  }
  run_until_stopped(*contexts_.front());
}

void Server::accept() {
  net::io_context& context = *contexts_[next_context_++ % contexts_.size()];
  acceptor_->async_accept(context, [this](const boost::system::error_code& ec, Session::Socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space) {
      std::fprintf(stderr, "bigmodel_simulator: accept: %s\n", ec.message().c_str());
      accept_backoff_->expires_after(kAcceptBackoff);
      accept_backoff_->async_wait([this](const boost::system::error_code& wait_ec) {
        if (!wait_ec) accept();
      });
      return;
    }
    if (!ec) {
      state_.stats.count_connection();
      boost::system::error_code ignored;
      // Answers are written whole; Nagle would only hold back the last segment of each.
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), state_)->start();
    }
    accept();
  });
}

void Server::stop() {
  boost::system::error_code ignored;
  acceptor_->close(ignored);
  for (auto& context : contexts_) context->stop();
}

}  // namespace simulator
