// The topic pipeline: (1) the search step gathers sources (the tool model with the platform's
// web_search tool, or the Web Search API), (2) the chat model writes the analysis from the topic and
// those sources. One attempt neither retries nor
// sleeps, and does not know whether it runs in a process, a thread or an event loop: PipelineAttempt
// is the attempt as a step machine (what to send next, what an answer changes), which Pipeline::run
// drives with a blocking client and the asyncio executor with its event loop.
#pragma once

#include <optional>
#include <string>

#include "bigmodel_client.hpp"
#include "prompt_template.hpp"
#include "task.hpp"

namespace cbm {

struct PipelineConfig {
  std::string tool_model = "glm-4.5-air";
  std::string chat_model = "glm-4.5-air";
  bool search = true;  // false: skip step 1 (--no-search)
  SearchVia search_via = SearchVia::tool;
  SearchSettings search_settings;
  // Both chat steps' settings; only the analysis step asks for response_format json_object, and only
  // its answer must then be a JSON object (else the attempt fails as invalid_json, task_fatal).
  ModelSettings model;
  bool keep_reasoning = false;  // the steps' reasoning_content goes into their records
  PromptSet prompts = PromptSet::defaults();
};

// The sources block substituted for {sources}: numbered, one per line with snippet.
std::string format_sources(const std::vector<Source>& sources, std::string_view search_summary);

class PipelineSteps;

// One attempt of one task, step by step. Call next_request(); send what it returns; hand the answer
// to on_answer(); repeat until next_request() returns nullopt; then take_outcome(). The attempt ends
// at its first error (the error names its step) or after the analysis step; an analysis that is cut
// or empty ends it as ErrorKind::incomplete, its text kept in the outcome. The one step sent again is
// one the platform refused as a duplicate request_id (1231): once, with a fresh id.
class PipelineAttempt {
 public:
  // `steps` must outlive the attempt.
  PipelineAttempt(PipelineSteps& steps, const Task& task);

  // The request to send now (its step record starts), or nullopt when the attempt is over.
  std::optional<StepRequest> next_request();
  // What the request returned by next_request() came back with.
  void on_answer(Result<ChatResponse, ApiError> answer);
  AttemptOutcome take_outcome() { return std::move(outcome_); }
  // The attempt's analysis request already went out in an earlier process (a Batch API line that
  // --resume collects): it starts at the analysis step, whose answer on_answer() takes. Its search
  // step left no record in this process, so the outcome has no search step and no sources.
  void continue_at_analysis() {
    if (stage_ == Stage::search) stage_ = Stage::analysis;
  }

 private:
  enum class Stage { search, analysis, done };

  void fail_step(const StepRecord& record);

  PipelineSteps* steps_;
  std::string topic_;
  Fields fields_;  // the row's, for the templates' field placeholders
  Stage stage_;
  Clock::time_point sent_at_{};
  std::string search_summary_;
  bool resent_duplicate_ = false;  // a step was sent again after a 1231 (duplicate request_id)
  AttemptOutcome outcome_;
};

// The pipeline's configuration and its request-id source: starts attempts, sends nothing itself.
class PipelineSteps {
 public:
  explicit PipelineSteps(PipelineConfig config);

  PipelineAttempt begin(const Task& task) { return PipelineAttempt(*this, task); }
  const PipelineConfig& config() const { return config_; }
  std::string next_request_id();

 private:
  PipelineConfig config_;
  std::string id_prefix_;  // makes request_ids unique across processes and runs
  std::uint64_t sequence_ = 0;
};

class Pipeline {
 public:
  // `client` must outlive the pipeline.
  Pipeline(PipelineConfig config, BigModelClient& client);

  // Runs one attempt of `task`; every request must finish by `deadline`.
  AttemptOutcome run(const Task& task, Clock::time_point deadline);

 private:
  PipelineSteps steps_;
  BigModelClient& client_;
};

}  // namespace cbm
