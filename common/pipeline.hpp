// The topic pipeline: (1) the tool model with the platform's web_search tool gathers sources, (2) the
// chat model writes the analysis from the topic and those sources. One call of `run` is one attempt;
// it neither retries nor sleeps, and it does not know whether it runs in a process, a thread or an
// event loop.
#pragma once

#include <string>

#include "bigmodel_client.hpp"
#include "prompt_template.hpp"
#include "task.hpp"

namespace cbm {

struct PipelineConfig {
  std::string tool_model = "glm-4.5-air";
  std::string chat_model = "glm-4.5-air";
  bool search = true;  // false: skip step 1 (--no-search)
  int search_count = 5;
  double temperature = 0.6;
  int max_tokens = 4096;
  PromptSet prompts = PromptSet::defaults();
};

// The sources block substituted for {sources}: numbered, one per line with snippet.
std::string format_sources(const std::vector<Source>& sources, std::string_view search_summary);

class Pipeline {
 public:
  // `client` must outlive the pipeline.
  Pipeline(PipelineConfig config, BigModelClient& client);

  // Runs one attempt of `task`; every request must finish by `deadline`.
  AttemptOutcome run(const Task& task, Clock::time_point deadline);

 private:
  PipelineConfig config_;
  BigModelClient& client_;
  std::string id_prefix_;  // makes request_ids unique across processes and runs
  std::uint64_t sequence_ = 0;
};

}  // namespace cbm
