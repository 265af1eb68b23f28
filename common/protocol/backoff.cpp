#include "backoff.hpp"

#include <algorithm>
#include <cstdint>

namespace cbm {

std::chrono::milliseconds Backoff::ceiling(int retry_index) const {
  std::chrono::milliseconds c = std::min(base, cap);
  // Doubling stops at the cap, so it never overflows and a huge index costs at most 63 steps.
  for (int i = 0; i < retry_index && c < cap && c.count() > 0; ++i) c = c > cap / 2 ? cap : c * 2;
  return c;
}

std::chrono::milliseconds Backoff::delay(int retry_index, double uniform01) const {
  const double j = std::clamp(jitter, 0.0, 1.0);
  const double share = 1.0 - j + j * std::clamp(uniform01, 0.0, 1.0);
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(ceiling(retry_index).count()) * share));
}

}  // namespace cbm
