// The report's shape, one for the run's file and the service's answers.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "exit_status.hpp"
#include "report_writer.hpp"
#include "terminal_record.hpp"

namespace {

cbm::TaskResult finished(std::uint64_t id, cbm::TaskStatus status) {
  cbm::TaskResult r = cbm::test::terminal_record(id, "topic " + std::to_string(id), 1, status);
  r.execution_time = std::chrono::milliseconds(2000);
  return r;
}

std::string report_of(const std::vector<cbm::TaskResult>& records, const cbm::ReportSummary& summary,
                      bool encoded) {
  std::string out;
  cbm::ReportWriter report([&](std::string_view piece) { out.append(piece); }, summary);
  for (const auto& r : records) encoded ? report.add_encoded(cbm::encode_task_result(r)) : report.add(r);
  report.finish();
  return out;
}

}  // namespace

TEST_CASE("a report carries the fields the Python tool's readers use, in the summary and each result",
          "[report]") {
  const std::vector<cbm::TaskResult> records = {finished(0, cbm::TaskStatus::succeeded),
                                                finished(1, cbm::TaskStatus::failed)};
  cbm::ReportSummary summary;
  for (const auto& r : records) summary.totals.add(r);
  summary.took = std::chrono::seconds(4);
  summary.concurrency = 2;
  summary.exit_status = cbm::kExitSomeFailed;

  const std::string text = report_of(records, summary, false);
  // A journal line is the report's entry as it is: streaming the journal gives the same document.
  CHECK(report_of(records, summary, true) == text);
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  REQUIRE_FALSE(d.HasParseError());
  const auto& s = d["summary"];
  CHECK(s["total_tasks"].GetUint64() == 2);
  CHECK(s["successful_tasks"].GetUint64() == 1);
  CHECK(s["average_execution_time"].GetDouble() == Approx(2.0));
  CHECK(s["throughput_tasks_per_second"].GetDouble() == Approx(0.5));
  CHECK(s["concurrency"].GetUint64() == 2);
  CHECK(s["aborted"].GetBool() == false);
  CHECK(s["abort_reason"].IsNull());
  CHECK(s["exit_status"].GetInt() == cbm::kExitSomeFailed);
  REQUIRE(d["results"].Size() == 2);
  for (const auto& r : d["results"].GetArray()) {
    for (const char* field : {"topic", "success", "analysis", "error_message"}) CHECK(r.HasMember(field));
  }
  CHECK(d["results"][0]["success"].GetBool());
  CHECK_FALSE(d["results"][1]["success"].GetBool());
}

TEST_CASE("a report with no results is still a whole document", "[report]") {
  const std::string text = report_of({}, cbm::ReportSummary{}, false);
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  REQUIRE_FALSE(d.HasParseError());
  CHECK(d["results"].Empty());
  CHECK_FALSE(d["summary"].HasMember("concurrency"));  // a run's is in its config
}
