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

}  // namespace cbm
