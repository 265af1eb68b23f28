#include "retry_policy.hpp"

#include <algorithm>

#include "backoff.hpp"

namespace cbm {

RetryDecision decide_retry(const RetryPolicy& policy, const ApiError& error, int attempts_made,
                           double uniform01) {
  switch (error.error_class) {
    case ErrorClass::run_fatal:
      return AbortRun{};
    case ErrorClass::task_fatal:
      return FailTask{};
    case ErrorClass::retryable:
    case ErrorClass::wait_until:  // reached only without a reset time to wait for: backoff, as retryable
      break;
  }
  if (attempts_made > policy.max_retries) return FailTask{};
  const Backoff backoff{policy.base, policy.cap, 1.0};
  auto delay = backoff.delay(attempts_made - 1, uniform01);
  if (error.retry_after) delay = std::max(delay, std::min(*error.retry_after, policy.retry_after_cap));
  return RetryAfter{delay};
}

}  // namespace cbm
