// RetryPolicy: whether and when a failed task attempt runs again.
//
// Capped exponential backoff with full jitter (backoff.hpp): the n-th retry waits
// uniform(0, min(cap, base * 2^n)), so tasks that failed together do not retry together; a server's
// Retry-After / retry-after-ms raises that wait (never lowers it), itself capped so a hostile header cannot
// stall a run. The policy is pure: the scheduler (process, thread or event loop) owns the waiting.
#pragma once

#include <chrono>
#include <cstdint>
#include <variant>

#include "api_error.hpp"

namespace cbm {

struct RetryPolicy {
  int max_retries = 2;  // retries after the first attempt (the Python tool's --max-retries)
  std::chrono::milliseconds base{1000};
  std::chrono::milliseconds cap{30000};
  std::chrono::milliseconds retry_after_cap{120000};
};

struct RetryAfter {
  std::chrono::milliseconds delay;
};
struct FailTask {};
struct AbortRun {};
using RetryDecision = std::variant<RetryAfter, FailTask, AbortRun>;

// A wait_until error comes here only when the engine has no reset time to pause for (or the task has
// waited its share): it is retried with backoff like a retryable one.
// `attempts_made` counts attempts so far, including the one that just failed with `error`.
// `uniform01` is a random draw in [0, 1): the caller owns the generator, so tests are deterministic.
RetryDecision decide_retry(const RetryPolicy& policy, const ApiError& error, int attempts_made,
                           double uniform01);

}  // namespace cbm
