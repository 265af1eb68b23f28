#include "retry_policy.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using cbm::ApiError;
using cbm::ErrorClass;

namespace {

ApiError error_of(ErrorClass c) {
  ApiError e;
  e.error_class = c;
  return e;
}

std::chrono::milliseconds delay_of(const cbm::RetryDecision& d) {
  REQUIRE(std::holds_alternative<cbm::RetryAfter>(d));
  return std::get<cbm::RetryAfter>(d).delay;
}

}  // namespace

TEST_CASE("a task's retry waits with full jitter below the doubling ceiling", "[retry]") {
  cbm::RetryPolicy p{5, 1000ms, 8000ms, 120000ms};
  const ApiError e = error_of(ErrorClass::retryable);
  CHECK(delay_of(cbm::decide_retry(p, e, 1, 0.0)) == 0ms);
  CHECK(delay_of(cbm::decide_retry(p, e, 1, 0.5)) == 500ms);
  CHECK(delay_of(cbm::decide_retry(p, e, 2, 0.5)) == 1000ms);
  CHECK(delay_of(cbm::decide_retry(p, e, 3, 0.999)) == 3996ms);
}

TEST_CASE("max-retries counts retries after the first attempt", "[retry]") {
  cbm::RetryPolicy p{2, 10ms, 100ms, 1000ms};
  const ApiError e = error_of(ErrorClass::retryable);
  CHECK(std::holds_alternative<cbm::RetryAfter>(cbm::decide_retry(p, e, 1, 0.5)));
  CHECK(std::holds_alternative<cbm::RetryAfter>(cbm::decide_retry(p, e, 2, 0.5)));
  CHECK(std::holds_alternative<cbm::FailTask>(cbm::decide_retry(p, e, 3, 0.5)));
  p.max_retries = 0;
  CHECK(std::holds_alternative<cbm::FailTask>(cbm::decide_retry(p, e, 1, 0.5)));
}

TEST_CASE("task-fatal errors fail at once and run-fatal errors abort, whatever retries remain", "[retry]") {
  cbm::RetryPolicy p{10, 10ms, 100ms, 1000ms};
  CHECK(std::holds_alternative<cbm::FailTask>(cbm::decide_retry(p, error_of(ErrorClass::task_fatal), 1, 0.5)));
  CHECK(std::holds_alternative<cbm::AbortRun>(cbm::decide_retry(p, error_of(ErrorClass::run_fatal), 1, 0.5)));
}

TEST_CASE("Retry-After raises the wait but never past its cap", "[retry]") {
  cbm::RetryPolicy p{5, 1000ms, 8000ms, 60000ms};
  ApiError e = error_of(ErrorClass::retryable);
  e.retry_after = 5000ms;
  CHECK(delay_of(cbm::decide_retry(p, e, 1, 0.1)) == 5000ms);
  e.retry_after = 10ms;  // shorter than the drawn backoff: the backoff wins
  CHECK(delay_of(cbm::decide_retry(p, e, 1, 0.5)) == 500ms);
  e.retry_after = std::chrono::hours(24);
  CHECK(delay_of(cbm::decide_retry(p, e, 1, 0.5)) == 60000ms);
}
