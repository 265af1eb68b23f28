#include "retry_policy.hpp"

#include <algorithm>

namespace cbm {

std::chrono::milliseconds backoff_ceiling(const RetryPolicy& policy, int retry_index) {
  using std::chrono::milliseconds;
  // Doubling stops once past the cap, so the shift never overflows.
  milliseconds ceiling = policy.base;
  for (int i = 0; i < retry_index && ceiling < policy.cap; ++i) ceiling *= 2;
  return std::min(ceiling, policy.cap);
}

RetryDecision decide_retry(const RetryPolicy& policy, const ApiError& error, int attempts_made,
                           double uniform01) {
  switch (error.error_class) {
    case ErrorClass::run_fatal:
      return AbortRun{};
    case ErrorClass::task_fatal:
      return FailTask{};
    case ErrorClass::retryable:
      break;
  }
  if (attempts_made > policy.max_retries) return FailTask{};
  const int retry_index = attempts_made - 1;
  const auto ceiling = backoff_ceiling(policy, retry_index);
  auto delay = std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(ceiling.count()) * std::clamp(uniform01, 0.0, 1.0)));
  if (error.retry_after) delay = std::max(delay, std::min(*error.retry_after, policy.retry_after_cap));
  return RetryAfter{delay};
}

}  // namespace cbm
