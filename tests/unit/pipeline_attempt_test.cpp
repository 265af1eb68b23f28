#include <catch2/catch.hpp>

#include "pipeline.hpp"

using cbm::ApiError;
using cbm::ChatResponse;
using cbm::Err;

namespace {

ChatResponse answer(std::string content) {
  ChatResponse r;
  r.content = std::move(content);
  r.finish_reason = "stop";
  r.usage.total_tokens = 10;
  return r;
}

}  // namespace

TEST_CASE("an attempt asks for the search step, then the analysis step with its sources, then is over",
          "[pipeline]") {
  cbm::PipelineConfig config;
  config.tool_model = "tool-m";
  config.chat_model = "chat-m";
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{7, 1, "tides", 1, {}});

  auto search = attempt.next_request();
  REQUIRE(search);
  CHECK(search->model == "tool-m");
  REQUIRE(search->web_search);
  CHECK(search->web_search->query == "tides");
  ChatResponse found = answer("search notes");
  found.web_search.push_back(cbm::Source{"Moon pulls", "https://example.org/moon", "", "", "snippet"});
  attempt.on_answer(found);

  auto analysis = attempt.next_request();
  REQUIRE(analysis);
  CHECK(analysis->model == "chat-m");
  CHECK_FALSE(analysis->web_search);
  CHECK(analysis->request_id != search->request_id);
  bool sources_in_prompt = false;
  for (const auto& m : analysis->messages) sources_in_prompt |= m.content.find("Moon pulls") != std::string::npos;
  CHECK(sources_in_prompt);
  attempt.on_answer(answer("the analysis"));

  CHECK_FALSE(attempt.next_request());
  const cbm::AttemptOutcome outcome = attempt.take_outcome();
  CHECK(outcome.ok());
  CHECK(outcome.analysis == "the analysis");
  REQUIRE(outcome.sources.size() == 1);
  REQUIRE(outcome.steps.size() == 2);
  CHECK(outcome.steps[0].name == "search");
  CHECK(outcome.steps[0].output == "search notes");
  CHECK(outcome.steps[1].name == "analysis");
  CHECK(outcome.steps[1].usage.total_tokens == 10);
}

TEST_CASE("an attempt ends at its first error, which names its step", "[pipeline]") {
  cbm::PipelineSteps steps(cbm::PipelineConfig{});
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  REQUIRE(attempt.next_request());
  ApiError e;
  e.message = "HTTP 500";
  attempt.on_answer(Err{e});
  CHECK_FALSE(attempt.next_request());
  const cbm::AttemptOutcome outcome = attempt.take_outcome();
  REQUIRE(outcome.error);
  CHECK(outcome.error->message == "search step: HTTP 500");
  CHECK(outcome.steps.size() == 1);
}

TEST_CASE("without search an attempt is the analysis step alone", "[pipeline]") {
  cbm::PipelineConfig config;
  config.search = false;
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  auto only = attempt.next_request();
  REQUIRE(only);
  CHECK_FALSE(only->web_search);
  attempt.on_answer(answer("done"));
  CHECK_FALSE(attempt.next_request());
  CHECK(attempt.take_outcome().analysis == "done");
}
