#include <catch2/catch.hpp>

#include "api_key.hpp"
#include "result_codec.hpp"

using namespace std::chrono_literals;

TEST_CASE("a terminal record survives the journal's round trip", "[codec]") {
  cbm::TaskResult r;
  r.id = 42;
  r.round = 3;
  r.topic = "topic \xE4\xB8\xAD";
  r.status = cbm::TaskStatus::failed;
  r.attempts = 3;
  r.worker = 7;
  r.usage = {1, 2, 3};
  r.sources = {{"t", "l", "m", "d", ""}};
  r.steps = {
      {"search", "glm-4.5-air", "stop", {1, 1, 2}, 120ms, {}, {}, {}, "cbm-1-ab-7", "resp-9", "thought"}};
  r.started = cbm::WallClock::time_point(1700000000123ms);
  r.finished = cbm::WallClock::time_point(1700000001123ms);
  r.execution_time = 1000ms;
  cbm::ApiError e;
  e.error_class = cbm::ErrorClass::retryable;
  e.kind = cbm::ErrorKind::timeout;
  e.message = "deadline";
  e.retry_after = 1500ms;
  r.error = e;

  rapidjson::Document d;
  d.Parse(cbm::encode_task_result(r).c_str());
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["error_message"].GetString()) == "deadline");
  CHECK_FALSE(d["success"].GetBool());
  auto back = cbm::decode_task_result(d);
  REQUIRE(back.ok());
  CHECK(back->id == 42);
  CHECK(back->round == 3);
  CHECK(back->topic == r.topic);
  CHECK(back->status == cbm::TaskStatus::failed);
  CHECK(back->attempts == 3);
  CHECK(back->usage.total_tokens == 3);
  CHECK(back->steps.at(0).latency == 120ms);
  CHECK(back->steps.at(0).request_id == "cbm-1-ab-7");
  CHECK(back->steps.at(0).response_id == "resp-9");
  CHECK(back->steps.at(0).reasoning == "thought");
  CHECK(std::string(d["steps"][0]["request_id"].GetString()) == "cbm-1-ab-7");
  CHECK(back->error->kind == cbm::ErrorKind::timeout);
  CHECK(back->error->retry_after == 1500ms);
  CHECK(back->started == r.started);
  CHECK(back->execution_time == 1000ms);
}

TEST_CASE("worker messages round-trip and malformed ones are rejected with a reason", "[codec]") {
  auto t = cbm::decode_task(cbm::encode_task({7, 2, "x", 3, {}}));
  REQUIRE(t.ok());
  CHECK(t->id == 7);
  CHECK(t->attempt == 3);
  CHECK(cbm::decode_task("{}").error().message == "task: id: missing");
  CHECK_THAT(cbm::decode_task("garbage").error().message, Catch::StartsWith("task: invalid JSON"));
  // A worker's commands: a task, or the cancel of one of its attempts (never taken for a task).
  auto run = cbm::decode_worker_command(cbm::encode_task({7, 2, "x", 3, {}}));
  REQUIRE(run.ok());
  CHECK_FALSE(run->cancel);
  CHECK(run->task.topic == "x");
  auto cancel = cbm::decode_worker_command(cbm::encode_cancel(7, 3));
  REQUIRE(cancel.ok());
  CHECK(cancel->cancel);
  CHECK(cancel->task.id == 7);
  CHECK(cancel->task.attempt == 3);
  CHECK(cbm::decode_task(cbm::encode_cancel(7, 3)).error().message == "task: a cancel, not a task");
  CHECK(cbm::decode_worker_command(R"({"id":1,"round":1,"cancel":"yes"})").error().message ==
        "task: cancel: expected boolean, got string");

  cbm::AttemptOutcome o;
  o.analysis = std::string(300000, 'a');
  auto m = cbm::decode_outcome(cbm::encode_outcome(7, 2, o, false));
  REQUIRE(m.ok());
  CHECK(m->outcome.analysis.size() == 300000);
  CHECK(m->outcome.ok());
  CHECK(cbm::decode_outcome(R"({"task_id":1,"error":{"class":"bogus","kind":"api"}})").error().message ==
        "outcome: error.class: unknown error class 'bogus'");
}

TEST_CASE("the key travels only over https or to loopback", "[config]") {
  CHECK(cbm::key_may_travel_to("https://open.bigmodel.cn/api/paas/v4"));
  CHECK(cbm::key_may_travel_to("http://127.0.0.1:8080/v4"));
  CHECK(cbm::key_may_travel_to("http://localhost/v4"));
  CHECK(cbm::key_may_travel_to("http://[::1]:9/v4"));
  CHECK_FALSE(cbm::key_may_travel_to("http://example.com/v4"));
  CHECK_FALSE(cbm::key_may_travel_to("http://127.0.0.1.evil.com/v4"));
  CHECK_FALSE(cbm::key_may_travel_to("http://localhost.evil.com/v4"));
  CHECK_FALSE(cbm::is_http_url("ftp://x"));
  CHECK_FALSE(cbm::is_http_url("http://"));
}
