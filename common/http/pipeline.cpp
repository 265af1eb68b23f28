#include "pipeline.hpp"

#include <rapidjson/document.h>
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

// A JSON object, surrounding whitespace allowed (what response_format json_object promises).
bool is_json_object(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  return !doc.HasParseError() && doc.IsObject();
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
    : steps_(&steps), topic_(task.topic), fields_(task.fields), stage_(steps.config().search ? Stage::search : Stage::analysis) {}

std::optional<StepRequest> PipelineAttempt::next_request() {
  if (stage_ == Stage::done) return std::nullopt;
  const PipelineConfig& config = steps_->config();
  std::string request_id = steps_->next_request_id();
  StepRecord record;
  record.name = stage_ == Stage::search ? "search" : "analysis";
  record.request_id = request_id;
  record.started = WallClock::now();
  sent_at_ = Clock::now();
  if (stage_ == Stage::search && config.search_via == SearchVia::api) {
    // No model: the record names the engine, and its usage stays zero.
    record.model = config.search_settings.engine;
    record.messages = {{"user", truncate_utf8(topic_, kMaxSearchQueryChars)}};
    outcome_.steps.push_back(std::move(record));
    return WebSearchRequest{topic_, config.search_settings, std::move(request_id)};
  }
  ChatRequest req;
  req.settings = config.model;
  req.request_id = std::move(request_id);
  const PromptSet& p = config.prompts;
  if (stage_ == Stage::search) {
    req.settings.response_format = ResponseFormat::text;
    req.model = config.tool_model;
    req.messages = {{"system", p.search_system.render(topic_, "", fields_)},
                    {"user", p.search_user.render(topic_, "", fields_)}};
    req.web_search = WebSearchTool{topic_, config.search_settings};
  } else {
    const std::string sources_text = format_sources(outcome_.sources, search_summary_);
    req.model = config.chat_model;
    req.messages = {{"system", p.analysis_system.render(topic_, sources_text, fields_)},
                    {"user", p.analysis_user.render(topic_, sources_text, fields_)}};
  }
  record.model = req.model;
  record.messages = req.messages;
  outcome_.steps.push_back(std::move(record));
  return req;
}

void PipelineAttempt::on_answer(Result<ChatResponse, ApiError> answer) {
  StepRecord& record = outcome_.steps.back();
  record.latency = since(sent_at_);
  if (!answer) {
    record.replaced_characters = answer.error().replaced_characters;
    if (answer.error().code == "1231" && !resent_duplicate_) {
      // The platform holds a request with this request_id already: the step goes again, once, and
      // next_request() gives it a fresh id. Its record is the new request's.
      resent_duplicate_ = true;
      outcome_.steps.pop_back();
      return;
    }
    outcome_.error = std::move(answer.error());
    fail_step(record);
    return;
  }
  record.response_id = std::move(answer->id);
  record.replaced_characters = answer->replaced_characters;
  record.finish_reason = answer->finish_reason;
  record.usage = answer->usage;
  record.output = answer->content;
  if (steps_->config().keep_reasoning) record.reasoning = std::move(answer->reasoning_content);
  if (stage_ == Stage::search) {
    outcome_.sources = std::move(answer->web_search);
    search_summary_ = std::move(answer->content);
    stage_ = Stage::analysis;
    return;
  }
  // The search step's content is only notes beside its sources: cut or empty, the analysis still
  // runs. The analysis is the answer: cut or empty, the attempt fails (the partial text is kept).
  if (auto why = incomplete_answer(record.finish_reason, answer->content)) {
    outcome_.analysis = std::move(answer->content);
    outcome_.error.emplace();
    outcome_.error->kind = ErrorKind::incomplete;
    outcome_.error->error_class = ErrorClass::task_fatal;
    outcome_.error->message = *why;
    fail_step(record);
    return;
  }
  if (steps_->config().model.response_format == ResponseFormat::json_object &&
      !is_json_object(answer->content)) {
    outcome_.error.emplace();
    outcome_.error->kind = ErrorKind::invalid_json;
    // The same request would be answered the same way often enough: not worth paying again.
    outcome_.error->error_class = ErrorClass::task_fatal;
    outcome_.error->message = "response_format json: the answer is not a JSON object";
    fail_step(record);
    return;
  }
  outcome_.analysis = std::move(answer->content);
  stage_ = Stage::done;
}

// The attempt ends at its failed step; the error names the step and its request_id (the platform's
// records and support find a call by it).
void PipelineAttempt::fail_step(const StepRecord& record) {
  outcome_.error->message.insert(0, record.error_prefix());
  stage_ = Stage::done;
}

Pipeline::Pipeline(PipelineConfig config, BigModelClient& client) : steps_(std::move(config)), client_(client) {}

AttemptOutcome Pipeline::run(const Task& task, Clock::time_point deadline) {
  PipelineAttempt attempt = steps_.begin(task);
  while (auto request = attempt.next_request()) attempt.on_answer(client_.complete(*request, deadline));
  return attempt.take_outcome();
}

}  // namespace cbm
