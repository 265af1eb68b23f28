#include "error_classification.hpp"

#include <catch2/catch.hpp>
#include <set>

using cbm::ErrorClass;
using cbm::classify_http_error;
using namespace std::chrono_literals;
using SysTime = std::chrono::system_clock::time_point;

namespace {

// 2026-05-25 11:22:49 UTC (19:22:49 in UTC+8).
SysTime utc_2026_05_25_112249() {
  using namespace std::chrono;
  return sys_days(year(2026) / May / 25) + 11h + 22min + 49s;
}

cbm::ApiError answer(int status, std::string code, std::string message) {
  cbm::ApiError e;
  e.http_status = status;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

}  // namespace

TEST_CASE("the account, the key, the model, the plan and the daily quota stop the whole run", "[classify]") {
  for (const char* code : {"1000", "1001", "1002", "1003", "1004", "1110", "1111", "1112", "1113", "1121",
                           "1211", "1212", "1220", "1221", "1222", "1304", "1309", "1311", "1313"}) {
    INFO("code " << code);
    CHECK(classify_http_error(429, code) == ErrorClass::run_fatal);
    CHECK(classify_http_error(200, code) == ErrorClass::run_fatal);  // in a stream or a 200 body alike
  }
  CHECK(classify_http_error(401, "") == ErrorClass::run_fatal);
  CHECK(classify_http_error(403, "") == ErrorClass::run_fatal);
}

TEST_CASE("rate limits, overload, busy models, server and account-access errors are retried", "[classify]") {
  for (const char* code : {"500", "1100", "1120", "1230", "1234", "1302", "1303", "1305", "1312"}) {
    INFO("code " << code);
    CHECK(classify_http_error(400, code) == ErrorClass::retryable);
  }
  for (int status : {408, 409, 429, 500, 502, 503, 504}) {
    INFO("status " << status);
    CHECK(classify_http_error(status, "") == ErrorClass::retryable);
  }
}

TEST_CASE("bad calls and parameters, prompt too long, policy blocks and a duplicate id fail the task",
          "[classify]") {
  for (const char* code : {"1200", "1210", "1213", "1214", "1215", "1231", "1261", "1300", "1301"}) {
    INFO("code " << code);
    CHECK(classify_http_error(500, code) == ErrorClass::task_fatal);
  }
  CHECK(classify_http_error(400, "") == ErrorClass::task_fatal);
}

TEST_CASE("usage caps 1308 and 1310 wait until their reset", "[classify]") {
  CHECK(classify_http_error(429, "1308") == ErrorClass::wait_until);
  CHECK(classify_http_error(429, "1310") == ErrorClass::wait_until);
}

TEST_CASE("an unknown code falls back on the HTTP status", "[classify]") {
  CHECK(classify_http_error(429, "1999") == ErrorClass::retryable);
  CHECK(classify_http_error(400, "1999") == ErrorClass::task_fatal);
  CHECK(classify_http_error(401, "not-a-number") == ErrorClass::run_fatal);
  CHECK(classify_http_error(404, "not-a-number") == ErrorClass::task_fatal);
  CHECK(classify_http_error(200, "") == ErrorClass::retryable);
}

TEST_CASE("the table holds every documented code once, in order, each with a meaning", "[classify]") {
  const auto table = cbm::error_code_table();
  std::set<int> codes;
  int previous = 0;
  for (const auto& row : table) {
    INFO("code " << row.code);
    CHECK(row.code > previous);
    CHECK_FALSE(row.meaning.empty());
    previous = row.code;
    codes.insert(row.code);
  }
  const std::set<int> documented = {500,  1000, 1001, 1002, 1003, 1004, 1100, 1110, 1111, 1112, 1113, 1120, 1121,
                                    1200, 1210, 1211, 1212, 1213, 1214, 1215, 1220, 1221, 1222, 1230, 1231, 1234,
                                    1261, 1300, 1301, 1302, 1303, 1304, 1305, 1308, 1309, 1310, 1311, 1312, 1313};
  CHECK(codes == documented);
  REQUIRE(cbm::find_error_code("1113") != nullptr);
  CHECK(cbm::find_error_code("1113")->error_class == ErrorClass::run_fatal);
  CHECK(cbm::find_error_code("1999") == nullptr);
  CHECK(cbm::find_error_code("") == nullptr);
}

TEST_CASE("a reset time is read in the zone it names, and in UTC+8 when it names none", "[classify][reset]") {
  const SysTime utc = utc_2026_05_25_112249();
  CHECK(cbm::parse_reset_time("Usage limit reached for 5 hour. Your limit will reset at 2026-05-25 19:22:49") ==
        utc);
  CHECK(cbm::parse_reset_time("您的限额将在 2026-05-25 19:22:49 重置") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25T19:22:49+08:00.") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25 19:22:49 +0800") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25 19:22:49 CST") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25 19:22:49 UTC+8") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25T11:22:49Z") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25 11:22:49 UTC") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25 11:22:49 GMT") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25T11:22:49.250Z") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026/5/25 19:22:49") == utc);
  CHECK(cbm::parse_reset_time("reset at 2026-05-25 19:22") == utc - 49s);
  CHECK(cbm::parse_reset_time("next_flush_time 1779708169") == utc);
  CHECK(cbm::parse_reset_time("next_flush_time 1779708169000") == utc);
}

TEST_CASE("a message without a reset time, or with a broken one, yields none", "[classify][reset]") {
  for (const char* message : {"", "Usage limit reached for 5 hour.", "reset at ${next_flush_time}",
                              "reset at 2026-13-25 19:22:49", "reset at 2026-02-30 10:00:00",
                              "reset at 2026-05-25 25:00:00", "reset at 2026-05-25", "12345 tokens",
                              "reset at 12026-05-25 19:22:49x"}) {
    INFO(message);
    CHECK_FALSE(cbm::parse_reset_time(message).has_value());
  }
}

TEST_CASE("a reset time in the past or more than a month ahead is not believed", "[classify][reset]") {
  const SysTime reset = utc_2026_05_25_112249();
  const std::string message = "Your limit will reset at 2026-05-25 19:22:49";
  CHECK(cbm::quota_resume_at(message, reset - 1h) == reset);
  CHECK(cbm::quota_resume_at(message, reset - cbm::kMaxQuotaWait) == reset);
  CHECK_FALSE(cbm::quota_resume_at(message, reset - cbm::kMaxQuotaWait - 1s).has_value());
  CHECK_FALSE(cbm::quota_resume_at(message, reset).has_value());
  CHECK_FALSE(cbm::quota_resume_at(message, reset + 1h).has_value());
}

TEST_CASE("classify_api_error sets a usage cap's resume time, or says it will back off", "[classify][reset]") {
  const SysTime reset = utc_2026_05_25_112249();
  auto capped = answer(429, "1310", "Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-05-25 19:22:49");
  cbm::classify_api_error(capped, reset - 5min);
  CHECK(capped.error_class == ErrorClass::wait_until);
  CHECK(capped.resume_at == reset);

  auto no_time = answer(429, "1308", "Usage limit reached. Your limit will reset at ${next_flush_time}");
  cbm::classify_api_error(no_time, reset);
  CHECK(no_time.error_class == ErrorClass::wait_until);
  CHECK_FALSE(no_time.resume_at.has_value());
  CHECK_THAT(no_time.message, Catch::Contains("retried with backoff"));
}

TEST_CASE("a strict OpenAI server's unknown-field answer stops the run and suggests --api-flavor openai",
          "[classify]") {
  auto e = answer(400, "", "Unrecognized request argument supplied: thinking");
  cbm::classify_api_error(e, std::chrono::system_clock::now());
  CHECK(e.error_class == ErrorClass::run_fatal);
  CHECK_THAT(e.message, Catch::StartsWith("Unrecognized request argument supplied: thinking") &&
                            Catch::Contains("--api-flavor openai"));
  auto other = answer(400, "", "some other bad request");
  cbm::classify_api_error(other, std::chrono::system_clock::now());
  CHECK(other.error_class == ErrorClass::task_fatal);
}

TEST_CASE("finish_reason sensitive is a task failure, network_error a transient one", "[classify]") {
  CHECK(cbm::classify_finish_reason("sensitive") == ErrorClass::task_fatal);
  CHECK(cbm::classify_finish_reason("network_error") == ErrorClass::retryable);
  for (const char* ok : {"stop", "length", "tool_calls", "model_context_window_exceeded", ""}) {
    CHECK_FALSE(cbm::classify_finish_reason(ok).has_value());
  }
}

TEST_CASE("an answer cut at max_tokens or the context window, or empty, is incomplete", "[classify]") {
  CHECK(cbm::incomplete_answer("length", "half an answer").has_value());
  CHECK(cbm::incomplete_answer("model_context_window_exceeded", "half").has_value());
  CHECK(cbm::incomplete_answer("stop", " \n\t ").has_value());
  CHECK(cbm::incomplete_answer("stop", "").has_value());
  CHECK_FALSE(cbm::incomplete_answer("stop", " an answer ").has_value());
  CHECK_FALSE(cbm::incomplete_answer("", "an answer").has_value());  // some servers send none
}
