#include "public_config.hpp"

#include <cstdio>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "api_key.hpp"
#include "langsmith_settings.hpp"
#include "listen_address.hpp"
#include "price_table.hpp"
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

// The settings sent on the wire (checked by config_problem).
void set_request_settings(const concurrent_bigmodel::Config& c, RunConfig& r) {
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

// The run's price table: the bundled one, or the price file's (std::invalid_argument naming the file
// and the entry when it cannot be read or is not a price table).
std::shared_ptr<const PriceTable> price_table_of(const concurrent_bigmodel::Config& c) {
  if (c.price_file.empty()) return std::make_shared<const PriceTable>(bundled_price_table());
  return std::make_shared<const PriceTable>(load_price_file(c.price_file.string()));
}

// A cost budget over something without a price could never be reached: refused before anything is sent.
std::optional<SettingProblem> budget_problem(const concurrent_bigmodel::Config& c, const PriceTable& prices) {
  if (c.max_cost <= 0) return std::nullopt;
  std::vector<std::string> unpriced;
  if (prices.model(c.chat_model) == nullptr) unpriced.push_back("model '" + c.chat_model + "'");
  if (c.search) {
    if (c.search_via == concurrent_bigmodel::SearchVia::tool && prices.model(c.tool_model) == nullptr &&
        c.tool_model != c.chat_model) {
      unpriced.push_back("model '" + c.tool_model + "'");
    }
    if (!prices.search_call(c.search_engine)) unpriced.push_back("search engine '" + c.search_engine + "'");
  }
  if (unpriced.empty()) return std::nullopt;
  std::string text = "the price table '";
  text += prices.origin;
  text += "' (";
  text += prices.date;
  text += ") has no price for ";
  for (std::size_t i = 0; i < unpriced.size(); ++i) {
    if (i > 0) text += ", ";
    text += unpriced[i];
  }
  text += "; give the prices in a price file (--price-file, Config::price_file)";
  return SettingProblem{"max_cost", std::move(text)};
}

// The price table and the budget (cost_problem's rule).
void set_cost_settings(const concurrent_bigmodel::Config& c, RunConfig& r) {
  try {
    r.prices = price_table_of(c);
  } catch (const std::invalid_argument& e) {
    require(false, std::string("price_file: ") + e.what());
  }
  if (auto problem = budget_problem(c, *r.prices)) require(false, problem->field + ": " + problem->message);
  r.budget.max_tokens = c.max_tokens_total;
  r.budget.max_cost = c.max_cost;
  r.budget.period = c.budget_period == concurrent_bigmodel::BudgetPeriod::day ? BudgetPeriod::day : BudgetPeriod::run;
}

}  // namespace

std::optional<SettingProblem> config_problem(const concurrent_bigmodel::Config& c) {
  using P = SettingProblem;
  if (c.api_key.empty()) return P{"api_key", "empty"};
  if (c.api_key.find_first_of("\r\n") != std::string::npos) return P{"api_key", "contains a line break"};
  if (!is_http_url(c.base_url)) return P{"base_url", "'" + c.base_url + "' is not an http:// or https:// URL"};
  if (!c.allow_insecure_http && !key_may_travel_to(c.base_url)) {
    return P{"base_url", "'" + c.base_url +
                             "' is plain http to a non-loopback host; the API key would travel unencrypted "
                             "(--allow-insecure-http, Config::allow_insecure_http, accepts that)"};
  }
  if (c.concurrency < 1 || c.concurrency > 1024) return P{"concurrency", "must be in 1..1024"};
  if (c.workers < 0 || c.workers > c.concurrency) {
    return P{"workers", std::to_string(c.workers) + " is not in 0..concurrency (" + std::to_string(c.concurrency) + ")"};
  }
  if (c.workers > 0 && c.mode != concurrent_bigmodel::Mode::multiprocessing) {
    return P{"workers", "applies to mode multiprocessing only"};
  }
  if (c.workers > 0 && c.via == concurrent_bigmodel::Via::batch) {
    return P{"workers", "applies to via online only (a batch run starts no worker process)"};
  }
  // Beyond a day, deadlines computed from now could overflow; no real run needs more.
  constexpr std::chrono::milliseconds kDay = std::chrono::hours(24);
  for (const auto& [name, value] : {std::pair{"timeout", c.timeout}, std::pair{"delay", c.delay},
                                    std::pair{"kill_grace", c.kill_grace}, std::pair{"drain_grace", c.drain_grace},
                                    std::pair{"restart_period", c.restart_period},
                                    std::pair{"progress_interval", c.progress_interval}}) {
    if (value > kDay) return P{name, "must be at most 24 hours"};
  }
  if (c.timeout.count() <= 0) return P{"timeout", "must be positive"};
  if (c.delay.count() < 0) return P{"delay", "must not be negative"};
  if (c.max_retries < 0 || c.max_retries > 100) return P{"max_retries", "must be in 0..100"};
  if (c.batch_size < 0) return P{"batch_size", "must not be negative"};
  if (c.via != concurrent_bigmodel::Via::online && c.via != concurrent_bigmodel::Via::batch) {
    return P{"via", "unknown value"};
  }
  if (c.batch_max_lines < 1 || c.batch_max_lines > 50000) return P{"batch_max_lines", "must be in 1..50000"};
  if (c.via == concurrent_bigmodel::Via::batch && c.api_flavor == concurrent_bigmodel::ApiFlavor::openai) {
    return P{"via", "the Batch API as this program uses it is BigModel's (/v4/chat/completions lines): not with "
                    "api_flavor openai"};
  }
  if (c.via == concurrent_bigmodel::Via::batch && c.stream) {
    return P{"via", "a batch line's answer comes whole: not with stream"};
  }
  if (c.requests_per_minute < 0) return P{"requests_per_minute", "must not be negative"};
  if (c.tokens_per_minute < 0) return P{"tokens_per_minute", "must not be negative"};
  if (c.chat_model.empty()) return P{"chat_model", "empty"};
  if (c.tool_model.empty()) return P{"tool_model", "empty"};
  if (c.keep_rounds < -1) return P{"keep_rounds", "must be -1 (automatic) or more"};
  if (c.progress_interval.count() <= 0) return P{"progress_interval", "must be positive"};
  if (c.kill_grace.count() < 0) return P{"kill_grace", "must not be negative"};
  if (c.drain_grace.count() < 0) return P{"drain_grace", "must not be negative"};
  if (c.max_restarts < 0) return P{"max_restarts", "must not be negative"};
  if (c.restart_period.count() <= 0) return P{"restart_period", "must be positive"};
  if (c.resume && c.fresh) return P{"fresh", "not with resume (fresh discards the journal resume would continue)"};
  if (c.output_mode > 0777 || (c.output_mode & 0600) != 0600) {
    return P{"output_mode", "'" + octal_text(c.output_mode) +
                                "' is not an octal mode from 0600 to 0777 (owner read and write kept)"};
  }
  if (!c.metrics_address.empty() && !parse_listen_address(c.metrics_address)) {
    return P{"metrics_address", "'" + c.metrics_address + "' is not HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464)"};
  }
  if (c.max_tokens_total < 0) return P{"max_tokens_total", "must not be negative"};
  if (!std::isfinite(c.max_cost) || c.max_cost < 0) return P{"max_cost", "must be a number, not negative"};
  if (!c.prompts.empty()) {
    auto prompts = PromptSet::from_file_text(c.prompts);
    if (!prompts.ok()) return P{"prompts", prompts.error().message};
  }
  return request_settings_problem(c);
}

std::optional<SettingProblem> cost_problem(const concurrent_bigmodel::Config& c) {
  std::shared_ptr<const PriceTable> prices;
  try {
    prices = price_table_of(c);
  } catch (const std::invalid_argument& e) {
    return SettingProblem{"price_file", e.what()};
  }
  return budget_problem(c, *prices);
}

std::optional<SettingProblem> dry_run_problem(bool resume) {
  if (!resume) return std::nullopt;
  return SettingProblem{"resume",
                        "a dry run estimates the whole input and does not read the journal; run it without "
                        "--resume (Config::resume = false) for the whole input's estimate"};
}

RunConfig checked_run_config(const concurrent_bigmodel::Config& c) {
  if (auto problem = config_problem(c)) require(false, problem->field + ": " + problem->message);
  std::optional<LangSmithSettings> langsmith;
  if (c.langsmith_from_environment) {
    auto settings = langsmith_settings(process_environment(), c.allow_insecure_http);
    if (!settings) throw std::invalid_argument(settings.error());
    langsmith = std::move(settings.value());
  }

  RunConfig r;
  r.mode = internal_mode(c.mode);
  r.concurrency = c.concurrency;
  r.workers = c.workers;
  r.timeout = c.timeout;
  r.delay = c.delay;
  r.batch_size = c.batch_size;
  r.via = c.via == concurrent_bigmodel::Via::batch ? Via::batch : Via::online;
  r.batch.max_lines = static_cast<std::size_t>(c.batch_max_lines);
  r.batch.cancel_on_stop = c.cancel_batch_on_stop;
  switch (c.batch_retry) {
    case concurrent_bigmodel::BatchRetry::batch:
      r.batch.retry = BatchRetry::batch;
      break;
    case concurrent_bigmodel::BatchRetry::online:
      r.batch.retry = BatchRetry::online;
      break;
    case concurrent_bigmodel::BatchRetry::none:
      r.batch.retry = BatchRetry::none;
      break;
  }
  r.rate.requests_per_minute = c.requests_per_minute;
  r.rate.tokens_per_minute = c.tokens_per_minute;
  r.output = c.output;
  r.journal = c.journal;
  if (r.journal.empty() && !r.output.empty()) {
    r.journal = r.output.parent_path() / (r.output.stem().string() + ".journal.jsonl");
  }
  require(!c.resume || !r.journal.empty(), "resume: needs output or journal (the run to resume)");
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
  if (!c.metrics_address.empty()) r.metrics_address = parse_listen_address(c.metrics_address);
  r.worker_executable = c.worker_executable.empty() ? std::filesystem::path(CBM_INSTALLED_WORKER)
                                                    : c.worker_executable;
  r.client.base_url = c.base_url;
  r.client.api_key = c.api_key;
  r.client.stream = c.stream;
  r.pipeline.chat_model = c.chat_model;
  r.pipeline.tool_model = c.tool_model;
  r.pipeline.search = c.search;
  set_request_settings(c, r);
  if (!c.prompts.empty()) r.pipeline.prompts = std::move(PromptSet::from_file_text(c.prompts).value());
  r.retry.max_retries = c.max_retries;
  r.on_quota = internal_quota_action(c.on_quota);
  r.accept_incomplete = c.accept_incomplete;
  set_cost_settings(c, r);
  return r;
}

}  // namespace cbm
