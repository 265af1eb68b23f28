#include "error_classification.hpp"

#include <catch2/catch.hpp>

using cbm::ErrorClass;
using cbm::classify_http_error;

TEST_CASE("auth failures, no balance, daily quota and unknown model stop the whole run", "[classify]") {
  for (const char* code : {"1000", "1001", "1002", "1003", "1004", "401", "1113", "1211", "1304"}) {
    INFO("code " << code);
    CHECK(classify_http_error(code[0] == '4' ? 401 : 429, code) == ErrorClass::run_fatal);
  }
  CHECK(classify_http_error(400, "1211") == ErrorClass::run_fatal);
  CHECK(classify_http_error(401, "") == ErrorClass::run_fatal);
}

TEST_CASE("rate limits, overload, busy models and server errors are retried", "[classify]") {
  for (const char* code : {"1302", "1303", "1305", "1312", "1234", "500"}) {
    INFO("code " << code);
    CHECK(classify_http_error(429, code) == ErrorClass::retryable);
  }
  for (int status : {408, 409, 429, 500, 502, 503, 504}) {
    INFO("status " << status);
    CHECK(classify_http_error(status, "") == ErrorClass::retryable);
  }
}

TEST_CASE("bad parameters, prompt too long and unsafe content fail the task without retry", "[classify]") {
  for (const char* code : {"1210", "1212", "1213", "1214", "1215", "1261", "1301"}) {
    INFO("code " << code);
    CHECK(classify_http_error(400, code) == ErrorClass::task_fatal);
  }
  CHECK(classify_http_error(400, "") == ErrorClass::task_fatal);
  CHECK(classify_http_error(404, "not-a-number") == ErrorClass::task_fatal);
}

TEST_CASE("finish_reason sensitive is a task failure, network_error a transient one", "[classify]") {
  CHECK(cbm::classify_finish_reason("sensitive") == ErrorClass::task_fatal);
  CHECK(cbm::classify_finish_reason("network_error") == ErrorClass::retryable);
  for (const char* ok : {"stop", "length", "tool_calls", "model_context_window_exceeded", ""}) {
    CHECK_FALSE(cbm::classify_finish_reason(ok).has_value());
  }
}
