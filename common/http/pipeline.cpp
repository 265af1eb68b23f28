#include "pipeline.hpp"

#include <unistd.h>

#include <random>

#include "error_classification.hpp"

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
  // Appended piece by piece: `"[" + std::to_string(n)` inserts at the front of a temporary, where g++ 12
  // at -O3 reports a memcpy overlap that cannot happen (-Wrestrict, GCC bug 105329).
  for (const auto& s : sources) {
    out += '[';
    out += std::to_string(++n);
    out += "] ";
    out += s.title;
    if (!s.media.empty() || !s.publish_date.empty()) {
      out += " (";
      out += s.media;
      if (!s.media.empty()) out += ", ";
      out += s.publish_date;
      out += ')';
    }
    if (!s.link.empty()) {
      out += ' ';
      out += s.link;
    }
    out += '\n';
    if (!s.content.empty()) {
      out += "    ";
      out += s.content;
      out += '\n';
    }
  }
  if (!search_summary.empty()) {
    out += "Search notes: ";
    out += search_summary;
    out += "\n";
  }
  if (out.empty()) out = "(no sources found)\n";
  return out;
}

PipelineSteps::PipelineSteps(PipelineConfig config)
    : config_(std::move(config)), id_prefix_("cbm-" + std::to_string(::getpid()) + "-" + random_hex(8) + "-") {}

std::string PipelineSteps::next_request_id() { return id_prefix_ + std::to_string(++sequence_); }

PipelineAttempt::PipelineAttempt(PipelineSteps& steps, const Task& task)
    : steps_(&steps), topic_(task.topic), stage_(steps.config().search ? Stage::search : Stage::analysis) {}

std::optional<ChatRequest> PipelineAttempt::next_request() {
  if (stage_ == Stage::done) return std::nullopt;
  const PipelineConfig& config = steps_->config();
  ChatRequest req;
  req.temperature = config.temperature;
  req.max_tokens = config.max_tokens;
  req.request_id = steps_->next_request_id();
  const PromptSet& p = config.prompts;
  if (stage_ == Stage::search) {
    req.model = config.tool_model;
    req.messages = {{"system", p.search_system.render(topic_, "")}, {"user", p.search_user.render(topic_, "")}};
    req.web_search = WebSearchTool{topic_, config.search_count};
  } else {
    const std::string sources_text = format_sources(outcome_.sources, search_summary_);
    req.model = config.chat_model;
    req.messages = {{"system", p.analysis_system.render(topic_, sources_text)},
                    {"user", p.analysis_user.render(topic_, sources_text)}};
  }
  outcome_.steps.push_back(StepRecord{stage_ == Stage::search ? "search" : "analysis", req.model, {}, {}, {},
                                      WallClock::now(), req.messages, {}});
  sent_at_ = Clock::now();
  return req;
}

void PipelineAttempt::on_answer(Result<ChatResponse, ApiError> answer) {
  StepRecord& record = outcome_.steps.back();
  record.latency = since(sent_at_);
  if (!answer) {
    if (answer.error().code == "1231" && !resent_duplicate_) {
      // The platform holds a request with this request_id already: the step goes again, once, and
      // next_request() gives it a fresh id. Its record is the new request's.
      resent_duplicate_ = true;
      outcome_.steps.pop_back();
      return;
    }
    outcome_.error = std::move(answer.error());
    outcome_.error->message = record.name + " step: " + outcome_.error->message;
    stage_ = Stage::done;
    return;
  }
  record.finish_reason = answer->finish_reason;
  record.usage = answer->usage;
  record.output = answer->content;
  if (stage_ == Stage::search) {
    outcome_.sources = std::move(answer->web_search);
    search_summary_ = std::move(answer->content);
    stage_ = Stage::analysis;
  } else {
    // The search step's content is only notes beside its sources: cut or empty, the analysis still
    // runs. The analysis is the answer: cut or empty, the attempt fails (the partial text is kept).
    outcome_.analysis = std::move(answer->content);
    if (auto why = incomplete_answer(record.finish_reason, outcome_.analysis)) {
      ApiError incomplete;
      incomplete.kind = ErrorKind::incomplete;
      incomplete.error_class = ErrorClass::task_fatal;
      incomplete.message = record.name + " step: " + *why;
      outcome_.error = std::move(incomplete);
    }
    stage_ = Stage::done;
  }
}

Pipeline::Pipeline(PipelineConfig config, BigModelClient& client) : steps_(std::move(config)), client_(client) {}

AttemptOutcome Pipeline::run(const Task& task, Clock::time_point deadline) {
  PipelineAttempt attempt = steps_.begin(task);
  while (auto request = attempt.next_request()) attempt.on_answer(client_.complete(std::move(*request), deadline));
  return attempt.take_outcome();
}

}  // namespace cbm
