#include "run_clock.hpp"

namespace cbm {
namespace {

class SteadyClock final : public RunClock {
 public:
  Clock::time_point now() const override { return Clock::now(); }
};

}  // namespace

RunClock& RunClock::steady() {
  static SteadyClock clock;
  return clock;
}

}  // namespace cbm
