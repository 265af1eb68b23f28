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

}  // namespace cbm
