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

const cbm::ChatRequest& chat(const std::optional<cbm::StepRequest>& r) {
  return std::get<cbm::ChatRequest>(*r);
}

}  // namespace

TEST_CASE("an attempt asks for the search step, then the analysis step with its sources, then is over",
          "[pipeline]") {
  cbm::PipelineConfig config;
  config.tool_model = "tool-m";
  config.chat_model = "chat-m";
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{7, 1, "tides", 1, {}});

  auto search_step = attempt.next_request();
  REQUIRE(search_step);
  const cbm::ChatRequest& search = chat(search_step);
  CHECK(search.model == "tool-m");
  REQUIRE(search.web_search);
  CHECK(search.web_search->query == "tides");
  ChatResponse found = answer("search notes");
  found.web_search.push_back(cbm::Source{"Moon pulls", "https://example.org/moon", "", "", "snippet"});
  attempt.on_answer(found);

  auto analysis_step = attempt.next_request();
  REQUIRE(analysis_step);
  const cbm::ChatRequest& analysis = chat(analysis_step);
  CHECK(analysis.model == "chat-m");
  CHECK_FALSE(analysis.web_search);
  CHECK(analysis.request_id != search.request_id);
  bool sources_in_prompt = false;
  for (const auto& m : analysis.messages)
    sources_in_prompt |= m.content.find("Moon pulls") != std::string::npos;
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
  CHECK(outcome.steps[0].request_id == search.request_id);
  CHECK(outcome.steps[1].request_id == analysis.request_id);
}

TEST_CASE("an attempt ends at its first error, which names its step", "[pipeline]") {
  cbm::PipelineSteps steps(cbm::PipelineConfig{});
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  auto sent = attempt.next_request();
  REQUIRE(sent);
  ApiError e;
  e.message = "HTTP 500";
  attempt.on_answer(Err{e});
  CHECK_FALSE(attempt.next_request());
  const cbm::AttemptOutcome outcome = attempt.take_outcome();
  REQUIRE(outcome.error);
  CHECK(outcome.error->message == "search step (request_id " + chat(sent).request_id + "): HTTP 500");
  CHECK(outcome.steps.size() == 1);
}

TEST_CASE("without search an attempt is the analysis step alone", "[pipeline]") {
  cbm::PipelineConfig config;
  config.search = false;
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  auto only = attempt.next_request();
  REQUIRE(only);
  CHECK_FALSE(chat(only).web_search);
  attempt.on_answer(answer("done"));
  CHECK_FALSE(attempt.next_request());
  CHECK(attempt.take_outcome().analysis == "done");
}

TEST_CASE("with search via the Web Search API the search step is a web search, its results the sources",
          "[pipeline]") {
  cbm::PipelineConfig config;
  config.search_via = cbm::SearchVia::api;
  config.search_settings.engine = "search_pro";
  config.search_settings.recency = "oneDay";
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  auto first = attempt.next_request();
  REQUIRE(first);
  REQUIRE(cbm::endpoint_of(*first) == cbm::Endpoint::web_search);
  const auto& search = std::get<cbm::WebSearchRequest>(*first);
  CHECK(search.query == "tides");
  CHECK(search.settings.recency == "oneDay");
  ChatResponse found;
  found.id = "ws-1";
  found.web_search.push_back(cbm::Source{"Moon pulls", "https://example.org/moon", "", "", "snippet"});
  attempt.on_answer(found);

  auto second = attempt.next_request();
  REQUIRE(second);
  const cbm::ChatRequest& analysis = chat(second);
  CHECK_THAT(analysis.messages.back().content + analysis.messages.front().content,
             Catch::Contains("Moon pulls"));
  attempt.on_answer(answer("done"));
  const cbm::AttemptOutcome outcome = attempt.take_outcome();
  REQUIRE(outcome.ok());
  REQUIRE(outcome.steps.size() == 2);
  CHECK(outcome.steps[0].name == "search");
  CHECK(outcome.steps[0].model == "search_pro");
  CHECK(outcome.steps[0].usage.total_tokens == 0);
  CHECK(outcome.steps[0].request_id == search.request_id);
  CHECK(outcome.steps[0].response_id == "ws-1");
}

TEST_CASE("with response_format json an analysis that is not a JSON object fails as invalid_json",
          "[pipeline]") {
  cbm::PipelineConfig config;
  config.search = false;
  config.model.response_format = cbm::ResponseFormat::json_object;
  cbm::PipelineSteps steps(config);
  for (const auto& [text, ok] :
       {std::pair{std::string(" {\"a\": 1}\n"), true}, std::pair{std::string("[1]"), false},
        std::pair{std::string("```json\n{}\n```"), false}, std::pair{std::string(""), false}}) {
    cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
    auto sent = attempt.next_request();
    REQUIRE(sent);
    CHECK(chat(sent).settings.response_format == cbm::ResponseFormat::json_object);
    attempt.on_answer(answer(text));
    const cbm::AttemptOutcome outcome = attempt.take_outcome();
    INFO(text);
    CHECK(outcome.ok() == ok);
    if (!ok) {
      // An empty answer is incomplete before it is anything else.
      CHECK(outcome.error->kind == (text.empty() ? cbm::ErrorKind::incomplete : cbm::ErrorKind::invalid_json));
      CHECK(outcome.error->error_class == cbm::ErrorClass::task_fatal);
    }
  }
}

TEST_CASE("the search step never asks for a JSON answer", "[pipeline]") {
  cbm::PipelineConfig config;
  config.model.response_format = cbm::ResponseFormat::json_object;
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  auto sent = attempt.next_request();
  REQUIRE(sent);
  CHECK(chat(sent).settings.response_format == cbm::ResponseFormat::text);
  attempt.on_answer(answer("notes, not JSON"));
  CHECK(attempt.next_request());
}

TEST_CASE("reasoning_content is kept in the step record only when asked", "[pipeline]") {
  for (const bool keep : {false, true}) {
    cbm::PipelineConfig config;
    config.search = false;
    config.keep_reasoning = keep;
    cbm::PipelineSteps steps(config);
    cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
    REQUIRE(attempt.next_request());
    ChatResponse r = answer("done");
    r.reasoning_content = "let me think";
    attempt.on_answer(r);
    CHECK(attempt.take_outcome().steps.at(0).reasoning == (keep ? "let me think" : ""));
  }
}

TEST_CASE("a duplicate request_id (1231) sends the step again once, with a fresh id", "[pipeline]") {
  cbm::PipelineConfig config;
  config.search = false;
  cbm::PipelineSteps steps(config);
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  ApiError duplicate;
  duplicate.code = "1231";
  duplicate.error_class = cbm::ErrorClass::task_fatal;
  duplicate.message = "you already have a request";

  auto first = attempt.next_request();
  REQUIRE(first);
  attempt.on_answer(Err{duplicate});
  auto second = attempt.next_request();
  REQUIRE(second);
  CHECK(chat(second).request_id != chat(first).request_id);
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
    cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
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
  cbm::PipelineAttempt attempt = steps.begin(cbm::Task{1, 1, "tides", 1, {}});
  REQUIRE(attempt.next_request());
  ChatResponse cut = answer("");
  cut.finish_reason = "length";
  attempt.on_answer(cut);
  REQUIRE(attempt.next_request());
  attempt.on_answer(answer("the analysis"));
  CHECK(attempt.take_outcome().ok());
}
