#include "public_config.hpp"

#include <cstdio>
#include <stdexcept>

#include "api_key.hpp"
#include "langsmith_settings.hpp"
#include "listen_address.hpp"
#include "prompt_template.hpp"
#include "run_files.hpp"

#ifndef CBM_INSTALLED_WORKER
#error "CBM_INSTALLED_WORKER (the installed worker's path) is defined by the build"
#endif

namespace cbm {
namespace {

using PublicMode = concurrent_bigmodel::Mode;

std::string octal_text(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode);
  return buf;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("concurrent_bigmodel::Config: " + what);
}

Mode internal_mode(PublicMode m) {
  switch (m) {
    case PublicMode::multiprocessing:
      return Mode::multiprocessing;
    case PublicMode::threading:
      return Mode::threading;
    case PublicMode::asyncio:
      return Mode::asyncio;
  }
  throw std::invalid_argument("concurrent_bigmodel::Config: mode: unknown value");
}

ApiFlavor internal_flavor(concurrent_bigmodel::ApiFlavor f) {
  return f == concurrent_bigmodel::ApiFlavor::openai ? ApiFlavor::openai : ApiFlavor::bigmodel;
}

Thinking internal_thinking(concurrent_bigmodel::Thinking t) {
  switch (t) {
    case concurrent_bigmodel::Thinking::enabled:
      return Thinking::enabled;
    case concurrent_bigmodel::Thinking::disabled:
      return Thinking::disabled;
    case concurrent_bigmodel::Thinking::automatic:
      return Thinking::automatic;
  }
  throw std::invalid_argument("concurrent_bigmodel::Config: thinking: unknown value");
}

ModelSettings model_settings_of(const concurrent_bigmodel::Config& c) {
  ModelSettings m;
  m.temperature = c.temperature;
  m.top_p = c.top_p;
  m.max_tokens = c.max_tokens;
  m.thinking = internal_thinking(c.thinking);
  m.response_format = c.response_format == concurrent_bigmodel::ResponseFormat::json ? ResponseFormat::json_object
                                                                                      : ResponseFormat::text;
  return m;
}

SearchSettings search_settings_of(const concurrent_bigmodel::Config& c) {
  SearchSettings s;
  s.engine = c.search_engine;
  s.recency = c.search_recency;
  s.domain = c.search_domain;
  s.count = c.search_count;
  s.content_size = c.search_content_size;
  return s;
}

// The settings sent on the wire (checked by request_settings_problem).
void set_request_settings(const concurrent_bigmodel::Config& c, RunConfig& r) {
  if (auto problem = request_settings_problem(c)) require(false, problem->field + ": " + problem->message);
  r.pipeline.model = model_settings_of(c);
  r.pipeline.search_settings = search_settings_of(c);
  r.pipeline.search_via = c.search_via == concurrent_bigmodel::SearchVia::api ? SearchVia::api : SearchVia::tool;
  r.pipeline.keep_reasoning = c.keep_reasoning;
  r.client.flavor = internal_flavor(c.api_flavor);
  r.client.accept_language = c.accept_language;
}

}  // namespace

std::optional<SettingProblem> request_settings_problem(const concurrent_bigmodel::Config& c) {
  if (auto problem = settings_problem(model_settings_of(c), search_settings_of(c))) return problem;
  if (c.accept_language.find_first_of("\r\n") != std::string::npos) {
    return SettingProblem{"accept_language", "contains a line break"};
  }
  if (c.api_flavor == concurrent_bigmodel::ApiFlavor::openai) {
    if (!c.search) return std::nullopt;
    return SettingProblem{"api_flavor",
                          "the search step needs BigModel's web search (the web_search tool or the Web Search "
                          "API), which an OpenAI server does not have: with --api-flavor openai pass --no-search "
                          "(Config::search = false)"};
  }
  if (c.allow_unlisted_model) return std::nullopt;
  if (auto problem = model_problem("chat_model", c.chat_model)) return problem;
  if (c.search && c.search_via == concurrent_bigmodel::SearchVia::tool) return model_problem("tool_model", c.tool_model);
  return std::nullopt;
}

namespace {

QuotaAction internal_quota_action(concurrent_bigmodel::OnQuota q) {
  switch (q) {
    case concurrent_bigmodel::OnQuota::wait:
      return QuotaAction::wait;
    case concurrent_bigmodel::OnQuota::stop:
      return QuotaAction::stop;
  }
  throw std::invalid_argument("concurrent_bigmodel::Config: on_quota: unknown value");
}

}  // namespace

RunConfig checked_run_config(const concurrent_bigmodel::Config& c) {
  require(!c.api_key.empty(), "api_key: empty");
  require(c.api_key.find_first_of("\r\n") == std::string::npos, "api_key: contains a line break");
  require(is_http_url(c.base_url), "base_url: '" + c.base_url + "' is not an http:// or https:// URL");
  require(c.allow_insecure_http || key_may_travel_to(c.base_url),
          "base_url: '" + c.base_url + "' is plain http to a non-loopback host (set allow_insecure_http)");
  require(c.concurrency >= 1 && c.concurrency <= 1024, "concurrency: must be in 1..1024");
  // Beyond a day, deadlines computed from now could overflow; no real run needs more.
  constexpr std::chrono::milliseconds kDay = std::chrono::hours(24);
  for (const auto& [name, value] : {std::pair{"timeout", c.timeout}, std::pair{"delay", c.delay},
                                    std::pair{"kill_grace", c.kill_grace}, std::pair{"drain_grace", c.drain_grace},
                                    std::pair{"restart_period", c.restart_period},
                                    std::pair{"progress_interval", c.progress_interval}}) {
    require(value <= kDay, std::string(name) + ": must be at most 24 hours");
  }
  require(c.timeout.count() > 0, "timeout: must be positive");
  require(c.delay.count() >= 0, "delay: must not be negative");
  require(c.max_retries >= 0 && c.max_retries <= 100, "max_retries: must be in 0..100");
  require(c.batch_size >= 0, "batch_size: must not be negative");
  require(c.requests_per_minute >= 0, "requests_per_minute: must not be negative");
  require(c.tokens_per_minute >= 0, "tokens_per_minute: must not be negative");
  require(!c.chat_model.empty(), "chat_model: empty");
  require(!c.tool_model.empty(), "tool_model: empty");
  require(c.keep_rounds >= -1, "keep_rounds: must be -1 (automatic) or more");
  require(c.progress_interval.count() > 0, "progress_interval: must be positive");
  require(c.kill_grace.count() >= 0, "kill_grace: must not be negative");
  require(c.drain_grace.count() >= 0, "drain_grace: must not be negative");
  require(c.max_restarts >= 0, "max_restarts: must not be negative");
  require(c.restart_period.count() > 0, "restart_period: must be positive");
  std::optional<ListenAddress> metrics_address;
  if (!c.metrics_address.empty()) {
    metrics_address = parse_listen_address(c.metrics_address);
    require(metrics_address.has_value(), "metrics_address: '" + c.metrics_address + "' is not HOST:PORT");
  }
  std::optional<LangSmithSettings> langsmith;
  if (c.langsmith_from_environment) {
    auto settings = langsmith_settings(process_environment(), c.allow_insecure_http);
    if (!settings) throw std::invalid_argument(settings.error());
    langsmith = std::move(settings.value());
  }

  RunConfig r;
  r.mode = internal_mode(c.mode);
  r.concurrency = c.concurrency;
  r.timeout = c.timeout;
  r.delay = c.delay;
  r.batch_size = c.batch_size;
  r.rate.requests_per_minute = c.requests_per_minute;
  r.rate.tokens_per_minute = c.tokens_per_minute;
  r.output = c.output;
  r.journal = c.journal;
  if (r.journal.empty() && !r.output.empty()) {
    r.journal = r.output.parent_path() / (r.output.stem().string() + ".journal.jsonl");
  }
  require(!c.resume || !r.journal.empty(), "resume: needs output or journal (the run to resume)");
  require(!(c.resume && c.fresh), "fresh: not with resume (fresh discards the journal resume would continue)");
  require(c.output_mode <= 0777 && (c.output_mode & 0600) == 0600,
          "output_mode: " + octal_text(c.output_mode) + " is not a mode from 0600 to 0777 (owner read and write kept)");
  r.results_jsonl = c.results_jsonl;
  r.output_mode = static_cast<mode_t>(c.output_mode);
  r.resume = c.resume;
  r.force_resume = c.force_resume;
  r.fresh = c.fresh;
  r.keep_rounds = c.keep_rounds;
  r.log_file = c.log_file;
  // The topics file is checked with the others when a run names it (RunFiles).
  if (auto problem = run_paths_problem(run_paths(r))) throw PathError(std::move(*problem));
  r.quiet = !c.console;
  r.progress_interval = c.progress_interval;
  r.kill_grace = c.kill_grace;
  r.drain_grace = c.drain_grace;
  r.restart_intensity.max_restarts = c.max_restarts;
  r.restart_intensity.period = c.restart_period;
  r.langsmith = std::move(langsmith);
  r.metrics_address = std::move(metrics_address);
  r.worker_executable = c.worker_executable.empty() ? std::filesystem::path(CBM_INSTALLED_WORKER)
                                                    : c.worker_executable;
  r.client.base_url = c.base_url;
  r.client.api_key = c.api_key;
  r.client.stream = c.stream;
  r.pipeline.chat_model = c.chat_model;
  r.pipeline.tool_model = c.tool_model;
  r.pipeline.search = c.search;
  set_request_settings(c, r);
  if (!c.prompts.empty()) {
    auto prompts = PromptSet::from_file_text(c.prompts);
    require(prompts.ok(), prompts.ok() ? std::string() : "prompts: " + prompts.error().message);
    r.pipeline.prompts = std::move(prompts.value());
  }
  r.retry.max_retries = c.max_retries;
  r.on_quota = internal_quota_action(c.on_quota);
  r.accept_incomplete = c.accept_incomplete;
  return r;
}

}  // namespace cbm
