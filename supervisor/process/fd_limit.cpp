#include "fd_limit.hpp"

#include <sys/resource.h>

#include <stdexcept>

namespace cbm {
namespace {

// The log, the journal, the report, the control eventfd, epoll, libcurl's own, the fork server's.
constexpr std::uint64_t kBaseFiles = 64;

}  // namespace

std::uint64_t raise_open_file_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(lim.rlim_cur);
}

std::uint64_t open_files_needed(const RunConfig& config) {
  const auto n = static_cast<std::uint64_t>(config.concurrency);
  switch (config.mode) {
    case Mode::multiprocessing:  // per worker process: its channel's socket and its pidfd
      return kBaseFiles + 2 * static_cast<std::uint64_t>(worker_processes_at_most(config));
    case Mode::threading:
    case Mode::asyncio:
      return kBaseFiles + n;  // one connection per task in flight
  }
  return kBaseFiles + n;
}

void ensure_open_file_limit(const RunConfig& config) {
  const std::uint64_t limit = raise_open_file_limit();
  const std::uint64_t needed = open_files_needed(config);
  if (needed > limit) {
    const std::string what = "--concurrency " + std::to_string(config.concurrency) +
                             (config.workers > 0 ? " with --workers " + std::to_string(config.workers) : "");
    throw std::runtime_error(what + " needs about " + std::to_string(needed) + " open files, but the limit is " +
                             std::to_string(limit) + " (ulimit -n; raise the hard limit or lower --concurrency)");
  }
}

}  // namespace cbm
