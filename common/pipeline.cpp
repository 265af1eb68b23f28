#include "pipeline.hpp"

#include <unistd.h>

#include <random>

namespace cbm {
namespace {

std::string random_hex(std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::mt19937_64 gen(rd());
  std::string out(n, '0');
  for (auto& c : out) c = kHex[gen() % 16];
  return out;
}

std::chrono::milliseconds since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

}  // namespace

std::string format_sources(const std::vector<Source>& sources, std::string_view search_summary) {
  std::string out;
  int n = 0;
  for (const auto& s : sources) {
    out += "[" + std::to_string(++n) + "] " + s.title;
    if (!s.media.empty() || !s.publish_date.empty()) out += " (" + s.media + (s.media.empty() ? "" : ", ") + s.publish_date + ")";
    if (!s.link.empty()) out += " " + s.link;
    out += "\n";
    if (!s.content.empty()) out += "    " + s.content + "\n";
  }
  if (!search_summary.empty()) {
    out += "Search notes: ";
    out += search_summary;
    out += "\n";
  }
  if (out.empty()) out = "(no sources found)\n";
  return out;
}

Pipeline::Pipeline(PipelineConfig config, BigModelClient& client)
    : config_(std::move(config)),
      client_(client),
      id_prefix_("cbm-" + std::to_string(::getpid()) + "-" + random_hex(8) + "-") {}

AttemptOutcome Pipeline::run(const Task& task, Clock::time_point deadline) {
  AttemptOutcome outcome;
  auto call = [&](const char* step, const std::string& model, std::string system, std::string user,
                  std::optional<WebSearchTool> tool) -> std::optional<ChatResponse> {
    ChatRequest req;
    req.model = model;
    req.messages = {{"system", std::move(system)}, {"user", std::move(user)}};
    req.temperature = config_.temperature;
    req.max_tokens = config_.max_tokens;
    req.request_id = id_prefix_ + std::to_string(++sequence_);
    req.web_search = std::move(tool);
    StepRecord record{step, model, {}, {}, {}, WallClock::now(), req.messages, {}};
    const auto t0 = Clock::now();
    auto answer = client_.complete(std::move(req), deadline);
    record.latency = since(t0);
    if (!answer) {
      outcome.steps.push_back(std::move(record));
      outcome.error = std::move(answer.error());
      outcome.error->message = std::string(step) + " step: " + outcome.error->message;
      return std::nullopt;
    }
    record.finish_reason = answer->finish_reason;
    record.usage = answer->usage;
    record.output = answer->content;
    outcome.steps.push_back(std::move(record));
    return std::move(answer.value());
  };

  std::string search_summary;
  if (config_.search) {
    auto found = call("search", config_.tool_model, config_.prompts.search_system.render(task.topic, ""),
                      config_.prompts.search_user.render(task.topic, ""),
                      WebSearchTool{task.topic, config_.search_count});
    if (!found) return outcome;
    outcome.sources = std::move(found->web_search);
    search_summary = std::move(found->content);
  }
  const std::string sources_text = format_sources(outcome.sources, search_summary);
  auto analysis = call("analysis", config_.chat_model,
                       config_.prompts.analysis_system.render(task.topic, sources_text),
                       config_.prompts.analysis_user.render(task.topic, sources_text), std::nullopt);
  if (!analysis) return outcome;
  outcome.analysis = std::move(analysis->content);
  return outcome;
}

}  // namespace cbm
