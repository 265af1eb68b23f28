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
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{7, 1, "tides", 1});

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
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1});
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
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1});
  auto only = attempt.next_request();
  REQUIRE(only);
  CHECK_FALSE(only->web_search);
  attempt.on_answer(answer("done"));
  CHECK_FALSE(attempt.next_request());
  CHECK(attempt.take_outcome().analysis == "done");
}

TEST_CASE("a duplicate request_id (1231) sends the step again once, with a fresh id", "[pipeline]") {
  cbm::PipelineConfig config;
  config.search = false;
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1});
  ApiError duplicate;
  duplicate.code = "1231";
  duplicate.error_class = cbm::ErrorClass::task_fatal;
  duplicate.message = "you already have a request";

  auto first = attempt.next_request();
  REQUIRE(first);
  attempt.on_answer(Err{duplicate});
  auto second = attempt.next_request();
  REQUIRE(second);
  CHECK(second->request_id != first->request_id);
  attempt.on_answer(Err{duplicate});
  CHECK_FALSE(attempt.next_request());  // once only: the second 1231 ends the attempt
  const cbm::AttemptOutcome outcome = attempt.take_outcome();
  REQUIRE(outcome.error);
  CHECK(outcome.error->code == "1231");
  CHECK(outcome.steps.size() == 1);
}

TEST_CASE("an analysis cut short or empty ends the attempt as incomplete, its text and reason kept",
          "[pipeline]") {
  cbm::PipelineConfig config;
  config.search = false;
  cbm::PipelineSteps steps(config);
  for (const auto& [finish_reason, content] :
       {std::pair{"length", "the first half"}, std::pair{"model_context_window_exceeded", "the first"},
        std::pair{"stop", "  \n "}}) {
    INFO(finish_reason);
    cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1});
    REQUIRE(attempt.next_request());
    ChatResponse cut = answer(content);
    cut.finish_reason = finish_reason;
    attempt.on_answer(cut);
    CHECK_FALSE(attempt.next_request());
    const cbm::AttemptOutcome outcome = attempt.take_outcome();
    REQUIRE(outcome.error);
    CHECK(outcome.error->kind == cbm::ErrorKind::incomplete);
    CHECK(outcome.error->error_class == cbm::ErrorClass::task_fatal);
    CHECK(outcome.analysis == content);
    REQUIRE(outcome.steps.size() == 1);
    CHECK(outcome.steps[0].finish_reason == finish_reason);
  }
}

TEST_CASE("a search step cut short or empty still leads to the analysis", "[pipeline]") {
  cbm::PipelineSteps steps(cbm::PipelineConfig{});
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1});
  REQUIRE(attempt.next_request());
  ChatResponse cut = answer("");
  cut.finish_reason = "length";
  attempt.on_answer(cut);
  REQUIRE(attempt.next_request());
  attempt.on_answer(answer("the analysis"));
  CHECK(attempt.take_outcome().ok());
}
