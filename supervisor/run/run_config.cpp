#include "run_config.hpp"

namespace cbm {

std::string_view to_string(Mode m) {
  switch (m) {
    case Mode::multiprocessing:
      return "multiprocessing";
    case Mode::threading:
      return "threading";
    case Mode::asyncio:
      return "asyncio";
  }
  return "unknown";
}

std::string_view to_string(Via v) { return v == Via::batch ? "batch" : "online"; }

std::string_view to_string(BatchRetry r) {
  switch (r) {
    case BatchRetry::batch:
      return "batch";
    case BatchRetry::online:
      return "online";
    case BatchRetry::none:
      return "none";
  }
  return "unknown";
}

std::size_t attempts_per_worker(const RunConfig& config) {
  if (config.workers <= 0) return 1;
  return static_cast<std::size_t>((config.concurrency + config.workers - 1) / config.workers);
}

std::size_t shared_workers(const RunConfig& config) {
  return static_cast<std::size_t>(attempts_per_worker(config) == 1 ? config.concurrency : config.workers);
}

std::size_t worker_processes_at_most(const RunConfig& config) {
  const std::size_t solo = attempts_per_worker(config) == 1 ? 0 : static_cast<std::size_t>(config.concurrency);
  return shared_workers(config) + solo;
}

}  // namespace cbm
