#include "metrics.hpp"

#include <catch2/catch.hpp>
#include <cmath>

#include "exposition.hpp"
#include "prometheus_text.hpp"

using namespace std::chrono_literals;
using cbm::test::parse_exposition;

namespace {

cbm::Task task_of(std::uint64_t id, int attempt) {
  return cbm::Task{id, 1, "topic", attempt, {}};
}

cbm::AttemptOutcome failure(cbm::ErrorClass c, cbm::ErrorKind k) {
  cbm::AttemptOutcome o;
  o.error = cbm::ApiError{};
  o.error->error_class = c;
  o.error->kind = k;
  return o;
}

cbm::StepRecord step(std::string name, std::chrono::milliseconds latency, std::int64_t prompt,
                     std::int64_t completion, std::string model = "glm-4.5-air") {
  cbm::StepRecord s;
  s.name = std::move(name);
  s.model = std::move(model);
  s.latency = latency;
  s.usage = {prompt, completion, prompt + completion};
  return s;
}

cbm::TaskResult finished(std::uint64_t id, cbm::TaskStatus status, int attempts,
                         std::chrono::milliseconds took) {
  cbm::TaskResult r;
  r.id = id;
  r.status = status;
  r.attempts = attempts;
  r.execution_time = took;
  return r;
}

}  // namespace

TEST_CASE("sample values are written as the exposition format spells them", "[metrics]") {
  CHECK(cbm::format_value(0.5) == "0.5");
  CHECK(cbm::format_value(3.0) == "3");
  CHECK(cbm::format_value(0.1) == "0.1");
  CHECK(cbm::format_value(HUGE_VAL) == "+Inf");
  CHECK(cbm::format_value(-HUGE_VAL) == "-Inf");
  CHECK(cbm::format_value(std::nan("")) == "NaN");
}

TEST_CASE("label values and help text are escaped", "[metrics]") {
  CHECK(cbm::escape_label_value("plain") == "plain");
  CHECK(cbm::escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  cbm::PrometheusText out;
  out.family("x_total", "counter", "Help with a \\ and a\nline feed; \"quotes\" stay.");
  out.sample("x_total", {{"k", "say \"hi\"\\\n"}}, std::uint64_t{7});
  CHECK(out.text() ==
        "# HELP x_total Help with a \\\\ and a\\nline feed; \"quotes\" stay.\n"
        "# TYPE x_total counter\n"
        "x_total{k=\"say \\\"hi\\\"\\\\\\n\"} 7\n");
  const auto parsed = parse_exposition(out.text());
  CHECK(parsed.value("x_total", {{"k", "say \"hi\"\\\n"}}) == 7);
  CHECK(parsed.families.at("x_total").help == "Help with a \\ and a\nline feed; \"quotes\" stay.");
}

TEST_CASE("a histogram's buckets are cumulative and end with +Inf equal to its count", "[metrics]") {
  const std::vector<double> bounds = {0.5, 1, 2.5};
  const std::vector<std::uint64_t> counts = {1, 0, 2, 3};
  cbm::PrometheusText out;
  out.family("h_seconds", "histogram", "A histogram.");
  out.histogram("h_seconds", {{"step", "a"}}, {bounds, counts, 12.25});
  CHECK(out.text() ==
        "# HELP h_seconds A histogram.\n"
        "# TYPE h_seconds histogram\n"
        "h_seconds_bucket{step=\"a\",le=\"0.5\"} 1\n"
        "h_seconds_bucket{step=\"a\",le=\"1\"} 1\n"
        "h_seconds_bucket{step=\"a\",le=\"2.5\"} 3\n"
        "h_seconds_bucket{step=\"a\",le=\"+Inf\"} 6\n"
        "h_seconds_sum{step=\"a\"} 12.25\n"
        "h_seconds_count{step=\"a\"} 6\n");
  CHECK_NOTHROW(parse_exposition(out.text()));
}

TEST_CASE("the test parser rejects what breaks the exposition format", "[metrics]") {
  const std::string typed = "# TYPE a counter\n";
  CHECK_NOTHROW(parse_exposition(typed + "a 1\n"));
  CHECK_THROWS(parse_exposition("a 1\n"));                                    // no TYPE
  CHECK_THROWS(parse_exposition(typed + "a 1"));                              // no final line feed
  CHECK_THROWS(parse_exposition(typed + "a -1\n"));                           // a negative counter
  CHECK_THROWS(parse_exposition(typed + "a{x=\"1\"} 1\na{x=\"1\"} 2\n"));     // a repeated series
  CHECK_THROWS(parse_exposition(typed + "a{x=\"\\t\"} 1\n"));                 // an unknown escape
  CHECK_THROWS(parse_exposition("# TYPE 1a counter\n1a 1\n"));                // a bad name
  CHECK_THROWS(parse_exposition(typed + "# TYPE b gauge\na 1\nb 1\na 2\n"));  // a family split in two
  const std::string h = "# TYPE h histogram\n";
  CHECK_NOTHROW(parse_exposition(h + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"));
  CHECK_THROWS(parse_exposition(h + "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n"));
  CHECK_THROWS(parse_exposition(h + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n"));
  CHECK_THROWS(parse_exposition(h + "h_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n"));
}

TEST_CASE("fresh metrics render every family at zero, the limit at --concurrency", "[metrics]") {
  const cbm::Metrics metrics(8);
  const auto m = parse_exposition(metrics.render());
  for (const char* family :
       {"cbm_tasks_total", "cbm_attempts_total", "cbm_retries_total", "cbm_task_duration_seconds",
        "cbm_request_duration_seconds", "cbm_in_flight", "cbm_concurrency_limit", "cbm_worker_restarts_total",
        "cbm_tokens_total", "cbm_rounds_completed_total", "cbm_last_round_success_timestamp_seconds",
        "cbm_build_info", "process_start_time_seconds", "cbm_api_errors_total", "cbm_quota_paused_until_seconds"}) {
    INFO(family);
    CHECK(m.families.count(family) == 1);
  }
  CHECK(m.value("cbm_concurrency_limit") == 8);
  CHECK(m.value("cbm_tasks_total", {{"outcome", "succeeded"}}) == 0);
  CHECK(m.value("cbm_attempts_total", {{"result", "retryable"}}) == 0);
  CHECK(m.value("cbm_retries_total", {{"kind", "timeout"}}) == 0);
  CHECK(m.value("cbm_task_duration_seconds_count", {{"outcome", "failed"}}) == 0);
  CHECK(m.value("process_start_time_seconds") > 1.6e9);
  CHECK(m.value("cbm_last_round_success_timestamp_seconds") == 0);
  CHECK(m.total("cbm_build_info") == 1);
  CHECK(m.families.count("cbm_langsmith_dropped_total") == 0);  // no tracing, no LangSmith families
}

TEST_CASE("tokens and request durations are labelled by model", "[metrics]") {
  cbm::Metrics metrics(4);
  cbm::AttemptOutcome ok;
  ok.steps = {step("search", 300ms, 100, 20, "glm-4.5-flash"), step("analysis", 2000ms, 400, 300, "glm-4.6")};
  metrics.attempt_started(task_of(1, 1), 0);
  metrics.attempt_ended(task_of(1, 1), ok, 0);
  const auto m = parse_exposition(metrics.render());
  CHECK(m.value("cbm_tokens_total", {{"kind", "prompt"}, {"model", "glm-4.5-flash"}}) == 100);
  CHECK(m.value("cbm_tokens_total", {{"kind", "completion"}, {"model", "glm-4.6"}}) == 300);
  CHECK(m.value("cbm_request_duration_seconds_count", {{"step", "analysis"}, {"model", "glm-4.6"}}) == 1);
  CHECK_FALSE(m.find("cbm_request_duration_seconds_count", {{"step", "analysis"}, {"model", "glm-4.5-flash"}}));
}

TEST_CASE("the last-round-success time moves only when a whole round succeeded", "[metrics]") {
  cbm::Metrics metrics(4);
  auto in_round = [](std::uint64_t id, std::uint32_t round, cbm::TaskStatus status) {
    cbm::TaskResult r = finished(id, status, 1, 10ms);
    r.round = round;
    return r;
  };
  metrics.task_finished(in_round(1, 1, cbm::TaskStatus::succeeded));
  metrics.task_finished(in_round(2, 1, cbm::TaskStatus::failed));
  metrics.round_finished(1);
  CHECK(parse_exposition(metrics.render()).value("cbm_last_round_success_timestamp_seconds") == 0);
  metrics.task_finished(in_round(1, 2, cbm::TaskStatus::succeeded));
  metrics.task_finished(in_round(2, 2, cbm::TaskStatus::succeeded));
  metrics.round_finished(2);
  const double first = parse_exposition(metrics.render()).value("cbm_last_round_success_timestamp_seconds");
  CHECK(first > 1.6e9);
  metrics.task_finished(in_round(1, 3, cbm::TaskStatus::cancelled));
  metrics.round_finished(3);
  CHECK(parse_exposition(metrics.render()).value("cbm_last_round_success_timestamp_seconds") == first);
}

TEST_CASE("LangSmith's sent and dropped records are counted by reason when tracing", "[metrics][langsmith]") {
  cbm::Metrics metrics(4);
  cbm::SenderTotals t;
  t.sent = 40;
  t.queue_full = 3;
  t.unsent_at_exit = 2;
  metrics.trace_totals([&t] { return t; });
  const auto m = parse_exposition(metrics.render());
  CHECK(m.value("cbm_langsmith_sent_total") == 40);
  CHECK(m.value("cbm_langsmith_dropped_total", {{"reason", "queue_full"}}) == 3);
  CHECK(m.value("cbm_langsmith_dropped_total", {{"reason", "unsent_at_exit"}}) == 2);
  CHECK(m.total("cbm_langsmith_dropped_total") == 5);
}

TEST_CASE("metrics count what the run's observer hears", "[metrics]") {
  cbm::Metrics metrics(4);
  // Task 1: a timeout, then a success with two model calls.
  metrics.attempt_started(task_of(1, 1), 0);
  metrics.attempt_ended(task_of(1, 1), failure(cbm::ErrorClass::retryable, cbm::ErrorKind::timeout), 0);
  metrics.attempt_started(task_of(1, 2), 1);
  cbm::AttemptOutcome ok;
  ok.steps = {step("search", 300ms, 100, 20), step("analysis", 2000ms, 400, 300)};
  metrics.attempt_ended(task_of(1, 2), ok, 1);
  metrics.task_finished(finished(1, cbm::TaskStatus::succeeded, 2, 3500ms));
  // Task 2: fails for good at once; its copy (a duplicate topic) costs nothing.
  metrics.attempt_started(task_of(2, 1), 0);
  metrics.attempt_ended(task_of(2, 1), failure(cbm::ErrorClass::task_fatal, cbm::ErrorKind::api), 0);
  metrics.task_finished(finished(2, cbm::TaskStatus::failed, 1, 50ms));
  cbm::TaskResult copy = finished(3, cbm::TaskStatus::failed, 0, 0ms);
  copy.duplicate_of = 2;
  metrics.task_finished(copy);
  // Task 4: running when the stop came; task 5 never started.
  metrics.attempt_started(task_of(4, 1), 2);
  metrics.attempt_started(task_of(6, 1), 3);
  metrics.attempt_ended(task_of(4, 1), failure(cbm::ErrorClass::retryable, cbm::ErrorKind::cancelled), 2);
  metrics.task_finished(finished(4, cbm::TaskStatus::cancelled, 1, 100ms));
  metrics.task_finished(finished(5, cbm::TaskStatus::cancelled, 0, 0ms));
  metrics.worker_restarted(1);
  metrics.limit_changed(3);
  metrics.round_finished(1);

  const auto m = parse_exposition(metrics.render());
  CHECK(m.value("cbm_tasks_total", {{"outcome", "succeeded"}}) == 1);
  CHECK(m.value("cbm_tasks_total", {{"outcome", "failed"}}) == 2);
  CHECK(m.value("cbm_tasks_total", {{"outcome", "cancelled"}}) == 2);
  CHECK(m.value("cbm_attempts_total", {{"result", "ok"}}) == 1);
  CHECK(m.value("cbm_attempts_total", {{"result", "retryable"}}) == 1);
  CHECK(m.value("cbm_attempts_total", {{"result", "task_fatal"}}) == 1);
  CHECK(m.value("cbm_attempts_total", {{"result", "run_fatal"}}) == 0);
  CHECK(m.value("cbm_attempts_total", {{"result", "cancelled"}}) == 1);
  CHECK(m.total("cbm_retries_total") == 1);
  CHECK(m.value("cbm_retries_total", {{"kind", "timeout"}}) == 1);
  CHECK(m.value("cbm_in_flight") == 1);  // task 6
  CHECK(m.value("cbm_concurrency_limit") == 3);
  CHECK(m.value("cbm_worker_restarts_total") == 1);
  CHECK(m.total("cbm_tokens_total", {{"kind", "prompt"}}) == 500);
  CHECK(m.total("cbm_tokens_total", {{"kind", "completion"}}) == 320);
  CHECK(m.value("cbm_rounds_completed_total") == 1);
  // Durations: the copy and the task that never ran are not timed.
  CHECK(m.value("cbm_task_duration_seconds_count", {{"outcome", "succeeded"}}) == 1);
  CHECK(m.value("cbm_task_duration_seconds_sum", {{"outcome", "succeeded"}}) == 3.5);
  CHECK(m.value("cbm_task_duration_seconds_bucket", {{"outcome", "succeeded"}, {"le", "2.5"}}) == 0);
  CHECK(m.value("cbm_task_duration_seconds_bucket", {{"outcome", "succeeded"}, {"le", "5"}}) == 1);
  CHECK(m.value("cbm_task_duration_seconds_count", {{"outcome", "failed"}}) == 1);
  CHECK(m.value("cbm_task_duration_seconds_count", {{"outcome", "cancelled"}}) == 1);
  CHECK(m.total("cbm_request_duration_seconds_count", {{"step", "search"}}) == 1);
  CHECK(m.total("cbm_request_duration_seconds_bucket", {{"step", "search"}, {"le", "0.25"}}) == 0);
  CHECK(m.total("cbm_request_duration_seconds_bucket", {{"step", "search"}, {"le", "0.5"}}) == 1);
  CHECK(m.total("cbm_request_duration_seconds_sum", {{"step", "analysis"}}) == 2.0);
}

TEST_CASE("a bucket's bound is inclusive", "[metrics]") {
  cbm::Metrics metrics(1);
  metrics.attempt_started(task_of(1, 1), 0);
  metrics.attempt_ended(task_of(1, 1), failure(cbm::ErrorClass::task_fatal, cbm::ErrorKind::api), 0);
  metrics.task_finished(finished(1, cbm::TaskStatus::failed, 1, 1000ms));
  const auto m = parse_exposition(metrics.render());
  CHECK(m.value("cbm_task_duration_seconds_bucket", {{"outcome", "failed"}, {"le", "0.5"}}) == 0);
  CHECK(m.value("cbm_task_duration_seconds_bucket", {{"outcome", "failed"}, {"le", "1"}}) == 1);
}

TEST_CASE("a retry is counted by the kind of the failure before it, per task and round", "[metrics]") {
  cbm::Metrics metrics(2);
  // Two rounds share task ids: the failure of round 1's task 0 is not round 2's.
  const cbm::Task r1{0, 1, "t", 1, {}};
  const cbm::Task r2{0, 2, "t", 1, {}};
  metrics.attempt_started(r1, 0);
  metrics.attempt_ended(r1, failure(cbm::ErrorClass::retryable, cbm::ErrorKind::crash), 0);
  metrics.attempt_started(r2, 1);
  metrics.attempt_ended(r2, failure(cbm::ErrorClass::retryable, cbm::ErrorKind::transport), 1);
  metrics.attempt_started(cbm::Task{0, 2, "t", 2, {}}, 1);
  metrics.attempt_started(cbm::Task{0, 1, "t", 2, {}}, 0);
  const auto m = parse_exposition(metrics.render());
  CHECK(m.value("cbm_retries_total", {{"kind", "crash"}}) == 1);
  CHECK(m.value("cbm_retries_total", {{"kind", "transport"}}) == 1);
  CHECK(m.total("cbm_retries_total") == 2);
}

TEST_CASE("every error answer from the platform is counted by its code and HTTP status", "[metrics]") {
  cbm::Metrics metrics(4);
  const auto api_error = [](int status, std::string code, cbm::ErrorKind kind = cbm::ErrorKind::api) {
    cbm::AttemptOutcome o = failure(cbm::ErrorClass::retryable, kind);
    o.error->http_status = status;
    o.error->code = std::move(code);
    return o;
  };
  for (int attempt = 1; attempt <= 2; ++attempt) {
    metrics.attempt_started(task_of(1, attempt), 0);
    metrics.attempt_ended(task_of(1, attempt), api_error(429, "1302"), 0);
  }
  metrics.attempt_started(task_of(2, 1), 0);
  metrics.attempt_ended(task_of(2, 1), api_error(200, "1113"), 0);  // an error frame in a stream
  metrics.attempt_started(task_of(3, 1), 0);
  metrics.attempt_ended(task_of(3, 1), api_error(503, ""), 0);
  metrics.attempt_started(task_of(4, 1), 0);
  metrics.attempt_ended(task_of(4, 1), api_error(0, "", cbm::ErrorKind::timeout), 0);  // not an answer

  const auto m = parse_exposition(metrics.render());
  CHECK(m.value("cbm_api_errors_total", {{"code", "1302"}, {"http_status", "429"}}) == 2);
  CHECK(m.value("cbm_api_errors_total", {{"code", "1113"}, {"http_status", "200"}}) == 1);
  CHECK(m.value("cbm_api_errors_total", {{"code", "none"}, {"http_status", "503"}}) == 1);
  CHECK(m.total("cbm_api_errors_total") == 4);
}

TEST_CASE("the quota gauge says until when a usage cap pauses dispatch, 0 when not paused", "[metrics]") {
  cbm::Metrics metrics(4);
  CHECK(parse_exposition(metrics.render()).value("cbm_quota_paused_until_seconds") == 0);
  const auto until = cbm::WallClock::time_point(std::chrono::seconds(1'779'708'170));
  metrics.quota_paused(until);
  CHECK(parse_exposition(metrics.render()).value("cbm_quota_paused_until_seconds") == 1'779'708'170);
  metrics.quota_paused(std::nullopt);
  CHECK(parse_exposition(metrics.render()).value("cbm_quota_paused_until_seconds") == 0);
}

TEST_CASE("a wait_until failure counts under its own result", "[metrics]") {
  cbm::Metrics metrics(4);
  metrics.attempt_started(task_of(1, 1), 0);
  metrics.attempt_ended(task_of(1, 1), failure(cbm::ErrorClass::wait_until, cbm::ErrorKind::api), 0);
  const auto m = parse_exposition(metrics.render());
  CHECK(m.value("cbm_attempts_total", {{"result", "wait_until"}}) == 1);
  CHECK(m.value("cbm_attempts_total", {{"result", "cancelled"}}) == 0);
}
