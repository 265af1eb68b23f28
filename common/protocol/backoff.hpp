// Backoff: capped exponential backoff, the one rule for every wait that grows with failures (a task's
// retries, LangSmith deliveries, worker restarts).
//
// Wait number n (from 0) has the ceiling min(cap, base * 2^n). `jitter` is the part of it drawn at
// random: the wait is ceiling * (1 - jitter + jitter * u) for a draw u in [0, 1). Jitter 0 waits the
// ceiling exactly; 1 is "full jitter", uniform below the ceiling (AWS architecture blog, "Exponential
// Backoff And Jitter"), which spreads clients that failed together the most; 0.25 waits between 75%
// and all of it. Pure: the caller owns the clock and the random generator, so tests are exact.
#pragma once

#include <chrono>

namespace cbm {

struct Backoff {
  std::chrono::milliseconds base;
  std::chrono::milliseconds cap;
  double jitter = 0.0;  // in [0, 1]; clamped

  // min(cap, base * 2^retry_index), without overflow however large the index; below 0 counts as 0.
  std::chrono::milliseconds ceiling(int retry_index) const;
  // The wait before retry `retry_index` for the draw `uniform01` in [0, 1) (clamped to [0, 1]).
  std::chrono::milliseconds delay(int retry_index, double uniform01) const;
};

}  // namespace cbm
