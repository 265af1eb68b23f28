// The BigModel client against the simulator: every fault of docs/protocol.md ("Errors") gets the right class.
#include <catch2/catch.hpp>

#include "bigmodel_client.hpp"
#include "simulator.hpp"

using namespace std::chrono_literals;
using cbm::ErrorClass;
using cbm::ErrorKind;
using cbm::test::Simulator;

namespace {

struct Fixture {
  Simulator sim;
  cbm::CurlGlobal curl;

  cbm::ClientConfig config(const std::string& key = "test-key") const {
    cbm::ClientConfig c;
    c.base_url = sim.base_url();
    c.api_key = key;
    c.http.low_speed_time = std::chrono::seconds(2);
    return c;
  }
};

cbm::ChatRequest request_for(const std::string& topic, bool search = false) {
  cbm::ChatRequest r;
  r.model = "glm-4.5-air";
  r.messages = {{"system", "s"}, {"user", topic}};
  r.request_id = "test-request-1";
  if (search) {
    r.web_search = cbm::WebSearchTool{topic, {}};
    r.web_search->settings.count = 3;
  }
  return r;
}

cbm::Result<cbm::ChatResponse, cbm::ApiError> call(cbm::BigModelClient& c, const std::string& topic,
                                                   std::chrono::milliseconds timeout = 10s) {
  return c.complete(request_for(topic), std::chrono::steady_clock::now() + timeout);
}

}  // namespace

TEST_CASE_METHOD(Fixture, "a normal answer carries content, usage and web_search sources", "[client]") {
  cbm::BigModelClient client(config());
  auto r = client.complete(request_for("solar power", true), std::chrono::steady_clock::now() + 10s);
  REQUIRE(r.ok());
  CHECK_FALSE(r->content.empty());
  CHECK(r->usage.total_tokens > 0);
  CHECK(r->web_search.size() == 3);
  CHECK(r->request_id == "test-request-1");
}

TEST_CASE_METHOD(Fixture, "one persistent connection serves many requests (keep-alive)", "[client]") {
  cbm::BigModelClient client(config());
  for (int i = 0; i < 20; ++i) REQUIRE(call(client, "topic " + std::to_string(i)).ok());
  auto stats = sim.stats();
  // One connection for the 20 requests, one for this /stats query.
  CHECK(stats["connections_accepted"].GetInt64() == 2);
  CHECK(stats["requests_total"].GetInt64() == 20);
}

TEST_CASE_METHOD(Fixture, "a streamed answer is assembled, and an error frame in it is an error", "[client][sse]") {
  auto cfg = config();
  cfg.stream = true;
  cbm::BigModelClient client(cfg);
  auto ok = call(client, "streamed topic");
  REQUIRE(ok.ok());
  CHECK_THAT(ok->content, Catch::Contains("streamed topic"));
  CHECK(ok->finish_reason == "stop");
  auto bad = call(client, "x [[fault:sse_error]]");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "1234");
  CHECK(bad.error().error_class == ErrorClass::retryable);
}

TEST_CASE_METHOD(Fixture, "every injected fault maps to its error class", "[client][faults]") {
  struct Case {
    const char* fault;
    ErrorClass cls;
    ErrorKind kind;
    const char* code;
  };
  const Case cases[] = {
      {"429_1302", ErrorClass::retryable, ErrorKind::api, "1302"},
      {"429_1305", ErrorClass::retryable, ErrorKind::api, "1305"},
      {"429_1113", ErrorClass::run_fatal, ErrorKind::api, "1113"},
      {"401", ErrorClass::run_fatal, ErrorKind::api, "1001"},
      {"400_1301", ErrorClass::task_fatal, ErrorKind::api, "1301"},
      {"400_1261", ErrorClass::task_fatal, ErrorKind::api, "1261"},
      {"400_1211", ErrorClass::run_fatal, ErrorKind::api, "1211"},
      {"500_1234", ErrorClass::retryable, ErrorKind::api, "1234"},
      {"503", ErrorClass::retryable, ErrorKind::api, ""},
      {"reset", ErrorClass::retryable, ErrorKind::transport, ""},
      {"invalid_json", ErrorClass::retryable, ErrorKind::protocol, ""},
      {"truncated_json", ErrorClass::retryable, ErrorKind::protocol, ""},
      {"oversize", ErrorClass::task_fatal, ErrorKind::protocol, ""},
      {"sensitive", ErrorClass::task_fatal, ErrorKind::content, ""},
      {"network_error", ErrorClass::retryable, ErrorKind::content, ""},
      {"empty_choices", ErrorClass::retryable, ErrorKind::protocol, ""},
      {"wrong_types", ErrorClass::retryable, ErrorKind::protocol, ""},
  };
  cbm::BigModelClient client(config());
  for (const auto& c : cases) {
    INFO("fault " << c.fault);
    auto r = call(client, std::string("topic [[fault:") + c.fault + "]]");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().error_class == c.cls);
    CHECK(r.error().kind == c.kind);
    CHECK(r.error().code == c.code);
    CHECK_FALSE(r.error().message.empty());
  }
  // The client kept working after every fault.
  CHECK(call(client, "healthy again").ok());
}

TEST_CASE_METHOD(Fixture, "Retry-After and retry-after-ms are carried to the retry policy", "[client][faults]") {
  cbm::BigModelClient client(config());
  auto seconds = call(client, "t [[fault:429_1302_retry_after]]");
  REQUIRE_FALSE(seconds.ok());
  CHECK(seconds.error().retry_after == 1000ms);
  auto ms = call(client, "t [[fault:429_1302_retry_after_ms]]");
  REQUIRE_FALSE(ms.ok());
  CHECK(ms.error().retry_after == 200ms);
}

TEST_CASE_METHOD(Fixture, "a hanging server ends in a timeout at the deadline", "[client][faults]") {
  cbm::BigModelClient client(config());
  const auto t0 = std::chrono::steady_clock::now();
  auto r = call(client, "t [[fault:hang]]", 500ms);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::timeout);
  CHECK(r.error().error_class == ErrorClass::retryable);
  // The deadline ended it: the server never answers. libcurl counts its timeout in whole milliseconds
  // from its own start of the transfer, so it may end up to a millisecond or so early.
  CHECK(took >= 495ms);
}

TEST_CASE_METHOD(Fixture, "a dripping server is cut off by the low-speed limit", "[client][faults]") {
  auto cfg = config();
  cfg.http.low_speed_bytes = 100;
  cfg.http.low_speed_time = std::chrono::seconds(1);
  cbm::BigModelClient client(cfg);
  auto r = call(client, "t [[fault:drip]]", 30s);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::timeout);
}

TEST_CASE_METHOD(Fixture, "a wrong key is a run-fatal 401 and the key never appears in the error", "[client][secrets]") {
  Simulator strict({"--api-key", "the-right-key"});
  auto cfg = config("sk-WRONG-secret-value");
  cfg.base_url = strict.base_url();
  cbm::BigModelClient client(cfg);
  auto r = call(client, "t");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().http_status == 401);
  CHECK(r.error().error_class == ErrorClass::run_fatal);
  CHECK(r.error().describe().find("sk-WRONG-secret-value") == std::string::npos);
}

TEST_CASE_METHOD(Fixture, "a refused connection is a retryable transport error", "[client][faults]") {
  auto cfg = config();
  cfg.base_url = "http://127.0.0.1:1/api/paas/v4";
  cbm::BigModelClient client(cfg);
  auto r = call(client, "t");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::transport);
  CHECK(r.error().error_class == ErrorClass::retryable);
}
