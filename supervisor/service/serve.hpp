// Service: `concurrent_bigmodel serve`, the analyses as an HTTP service.
//
//   POST /analyze  {"topics": ["...", ...], "concurrency": N}  -> 200, the report of that batch
//   GET  /healthz                                             -> 200 {"status":"ok",...} | 503 draining
//
// Hostile clients (the HTTP bounds are http_server.hpp's): a body is parsed only within a shallow shape
// and its topic limit (400 naming the bound); the topics waiting over all requests are capped (503
// with Retry-After); a client that hangs up has its topics not yet started dropped, never sent, and
// its answer with them; with a token, /analyze needs it (401; compared in constant time), /healthz not.
//
// One worker pool serves every request: the service runs a single endless round of the executor of
// the configured mode over a BatchQueue (batch_queue.hpp), which the requests feed. A request's N
// (default and upper bound: --concurrency) caps how many of its topics run at once; --concurrency caps
// them all together. Its answer is the CLI report's shape (summary + results) over its own topics,
// results in the order of the request's topics, each id its index there.
//
// Memory: a request's topics and records are held until it is answered, then freed; what stays is
// the ledger's done-flag per task of the round (1 byte per topic served since the start) and totals.
//
// Stopping: the first TERM/INT stops taking requests (POST /analyze and /healthz answer 503, every
// answer closes its connection) and lets every accepted request finish, for up to --drain-grace; then,
// or at a second TERM/INT, what still runs is cancelled and its requests are answered with the
// cancelled records. The process then exits (see exit_status()).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>

#include "batch_queue.hpp"
#include "http_server.hpp"
#include "logger.hpp"
#include "listen_address.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "run_ledger.hpp"

namespace cbm {

struct ServeOptions {
  ListenAddress listen{"127.0.0.1", 8080};
  std::size_t max_topics = 1000;          // per request
  std::size_t max_queued_topics = 10000;  // waiting to run, over all requests: more get 503 + Retry-After
  std::string auth_token;  // secret; non-empty: POST /analyze needs `Authorization: Bearer <it>`
  HttpServer::Limits http;
};

class Service {
 public:
  // Binds the address (throws std::runtime_error naming it when it cannot); starts nothing else.
  Service(const RunConfig& config, ServeOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Serves until a stop has drained every accepted request; returns the exit status:
  // 0 stopped by TERM/INT after every accepted request finished; 128+N when the stop by signal N had
  // to cancel tasks (a second signal, or --drain-grace ran out); 3 when the pool aborted (a run-fatal
  // API error such as a bad key, or workers that keep crashing). Throws when the pool cannot start.
  int run();

  // Callable from any thread (the signal watcher): the first stops taking requests and drains, a later
  // one cancels what still runs.
  void stop_by_signal(int signal);
  // Writes a status line (requests, topics in flight and queued) to the log.
  void log_status();

 private:
  std::optional<HttpAnswer> handle(const IncomingRequest& request, HttpReply reply);
  std::optional<HttpAnswer> analyze(const IncomingRequest& request, HttpReply reply);
  HttpAnswer health() const;

  const RunConfig& config_;
  const ServeOptions options_;
  RunControl control_;
  HttpServer server_;  // outlives the queue: its requests' replies point into it
  BatchQueue queue_;
  Logger* log_ = nullptr;              // the run's, while run() runs
  const RunLedger* ledger_ = nullptr;  // the run's, while run() runs: answers read how their batch ended

  std::mutex mu_;
};

}  // namespace cbm
