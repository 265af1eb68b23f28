#include "cli.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "api_key.hpp"
#include "fleet_job.hpp"
#include "fleet_rate.hpp"
#include "fleet_semaphore.hpp"
#include "cbm/version.hpp"
#include "input_stream.hpp"
#include "listen_address.hpp"
#include "prompt_template.hpp"
#include "public_config.hpp"
#include "request_settings.hpp"
#include "run_driver.hpp"
#include "topic_rules.hpp"
#include "topic_source.hpp"
#include "worker_process.hpp"

namespace cbm {
namespace {

const std::vector<std::string> kDefaultTopics = {
    "Artificial intelligence in healthcare", "Renewable energy storage technologies",
    "Quantum computing breakthroughs",       "Global semiconductor supply chain",
    "Climate change adaptation strategies",
};

// The flag that sets a Config field, for the library's problems (config_problem): `--` and the field
// with dashes, but for the fields whose flag has another name.
std::string flag_of(const SettingProblem& problem) {
  static const std::pair<std::string_view, std::string_view> kRenamed[] = {
      {"api_key", "the API key (--api-key or BIGMODEL_API_KEY)"},
      {"requests_per_minute", "--rpm"},
      {"tokens_per_minute", "--tpm"},
      {"metrics_address", "--metrics-addr"},
      {"prompts", "--prompt-file"},
      {"console", "--quiet"},
  };
  for (const auto& [field, flag] : kRenamed) {
    if (problem.field == field) return std::string(flag);
  }
  return problem.flag();
}

constexpr const char* kFooter = R"(Exit status:
  0    every task succeeded
  1    the run finished and some tasks failed
  2    bad usage or configuration (nothing was sent)
  3    aborted: a run-fatal API error (auth, no balance, unknown model), a usage cap under
       --on-quota stop, a reached budget (--max-tokens-total, --max-cost), or workers that keep crashing
  128+N  stopped by signal N after a graceful drain (130 SIGINT, 143 SIGTERM); the report is written

Signals: TERM/INT drain in-flight tasks (up to --drain-grace) then write the report; a second TERM/INT
kills workers at once and records unfinished tasks as cancelled.

The API key is read from --api-key, else BIGMODEL_API_KEY, else ZHIPUAI_API_KEY, else ZAI_API_KEY; the base
URL from --base-url, else BIGMODEL_BASE_URL, ZHIPUAI_BASE_URL, ZAI_BASE_URL. Prefer the environment for the
key: a flag is visible to other users in the process list. The key is never logged or written to the report.

LangSmith tracing (one trace per task attempt) is on when LANGSMITH_TRACING=true, configured as
LangSmith's SDK reads it: LANGSMITH_API_KEY, LANGSMITH_ENDPOINT (default https://api.smith.langchain.com),
LANGSMITH_PROJECT (default "default"), LANGSMITH_WORKSPACE_ID (sent as X-Tenant-Id),
LANGSMITH_TRACING_SAMPLING_RATE (0-1, per trace), LANGSMITH_HIDE_INPUTS/_OUTPUTS/_METADATA=true;
LANGCHAIN_* names are read when the LANGSMITH_* ones are unset.)";

constexpr const char* kServeFooter = R"(Endpoints:
  POST /analyze  {"topics": ["...", ...], "concurrency": N}  -> 200 and the report of that batch
                 (N optional: at most N of its topics run at once; default and upper bound --concurrency)
  GET  /healthz  -> 200 {"status":"ok","requests":..,"in_flight":..,"queued":..}; 503 while stopping
A bad body or too many topics gets 400 with {"error": "..."}; a body over 8 MiB gets 413; a POST without
Content-Length gets 411. More than --max-queued-topics waiting gets 503 with Retry-After. A client that
hangs up before its answer has its topics not yet started dropped (never sent). With --auth-token-file,
POST /analyze needs "Authorization: Bearer <token>" (401 otherwise); /healthz stays open.
Connections: a request's header must arrive within 10 s, its body within 30 s more; at most 256
connections, 64 per client address; past a cap the longest-waiting connection without a whole request is
closed, so slow clients cannot lock out others.

Exit status:
  0    stopped by TERM/INT after every accepted request was answered in full
  2    bad usage or configuration (nothing was sent; the address cannot be bound)
  3    aborted: a run-fatal API error (auth, no balance, unknown model) or workers that keep crashing
  128+N  stopped by signal N, cancelling tasks (a second TERM/INT, or --drain-grace ran out)

Signals: TERM/INT stop taking requests (503) and let accepted ones finish, up to --drain-grace; a second
TERM/INT cancels what still runs, and its requests are answered with the cancelled records. USR1 writes a
status line to the log.

The API key is read from --api-key, else BIGMODEL_API_KEY, else ZHIPUAI_API_KEY, else ZAI_API_KEY; the base
URL from --base-url, else BIGMODEL_BASE_URL, ZHIPUAI_BASE_URL, ZAI_BASE_URL.)";

std::string read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "': " + std::strerror(errno);
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CommandLine usage_error(std::string message) {
  return {std::nullopt, kExitUsage,
          "concurrent_bigmodel: " + std::move(message) + "\nRun with --help for usage.", std::nullopt,
          std::nullopt};
}

// The worker beside the running executable (the build tree), else where an install put it relative to
// bin/ (so an installed tree works wherever it was copied); else the library's compiled-in default.
std::filesystem::path worker_beside_self() {
  const auto beside = worker_executable_path();
  if (::access(beside.c_str(), X_OK) == 0) return beside;
  const auto installed = (beside.parent_path() / CBM_WORKER_FROM_BIN).lexically_normal();
  return ::access(installed.c_str(), X_OK) == 0 ? installed : std::filesystem::path();
}

std::chrono::milliseconds seconds_to_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0 + 0.5));
}

}  // namespace

namespace {

// The flags' values, as CLI11 fills them, and how they become a configuration: one method per group,
// each returning what is wrong (a usage error's text) or nothing.
struct Flags {
  Invocation inv;
  concurrent_bigmodel::Config& cfg = inv.config;
  std::optional<std::string> api_key;
  std::string mode = "multiprocessing";
  std::string on_quota = "wait";
  double timeout_s = 120.0;
  double delay_s = 0.5;
  double kill_grace_s = 2.0;
  double drain_grace_s = 30.0;
  double restart_period_s = 10.0;
  std::string prompt_file;
  std::string output;
  std::string log_file = "concurrent_bigmodel.log";
  std::string metrics_addr;
  bool allow_insecure_http = false;
  std::string base_url;
  bool quiet = false;
  double progress_interval_s = 10.0;
  std::string journal;
  std::string results_jsonl;
  std::string output_mode = "0600";
  std::string input_format;
  int keep_rounds = -1;
  ServeOptions serve_options;
  std::string auth_token_file;
  std::string listen = "127.0.0.1:8080";
  std::string api_flavor = "bigmodel";
  std::string thinking = "disabled";
  std::string response_format = "text";
  std::string budget_period = "run";
  std::string price_file;
  std::string search_via = "tool";
  std::string via = "online";
  std::string batch_retry = "batch";
  FleetInvocation fleet;
  bool key_optional = false;

  static constexpr const char* py =
      "Options of the Python tool (same names and meanings; same defaults except the models: its glm-4.5-aq "
      "is no documented model)";
  static constexpr const char* platform = "Model and search settings";
  static constexpr const char* input = "Input and API";
  static constexpr const char* rel = "Reliability";

  // The worker pool's flags, shared by a batch run and the service (bound to the same variables).
  void add_pool(CLI::App& a, bool service) {
    a.add_option("--api-key", api_key, "BigModel API key (prefer the BIGMODEL_API_KEY environment variable)")
        ->group(py);
    a.add_option("--concurrency", cfg.concurrency,
                 service ? "Tasks in flight at once, all requests together (workers)"
                         : "Tasks in flight at once (workers)")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str()
        ->group(py);
    a.add_option("--mode", mode,
                 "How tasks are run: multiprocessing (worker processes: survives\n"
                 "a worker's crash or kill) | threading (threads: a crash takes\n"
                 "the run) | asyncio (one event loop, curl_multi: the most tasks\n"
                 "in flight per core; a crash takes the run)")
        ->check(CLI::IsMember({"multiprocessing", "threading", "asyncio"}))
        ->capture_default_str()
        ->group(py);
    a.add_option("--workers", cfg.workers,
                 "--mode multiprocessing: worker processes for the --concurrency tasks, each running\n"
                 "up to concurrency/workers at once on its own event loop (fewer processes: less CPU\n"
                 "and memory per task). A worker that dies with several tasks runs each again alone,\n"
                 "so only a task that kills its worker alone is charged. 0 (default): one per task")
        ->check(CLI::Range(0, 1024))
        ->group(py);
    a.add_option("--timeout", timeout_s, "Seconds allowed for one attempt of one task")
        ->check(CLI::Range(0.001, 86400.0))
        ->capture_default_str()
        ->group(py);
    a.add_option("--delay", delay_s,
                 service ? "Seconds a worker pauses between tasks"
                         : "Seconds a worker pauses between tasks, and between rounds")
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str()
        ->group(py);
    a.add_option("--max-retries", cfg.max_retries, "Retries of a task after its first attempt")
        ->check(CLI::Range(0, 100))
        ->capture_default_str()
        ->group(py);
    a.add_option(
         "--chat-model", cfg.chat_model,
         "Model that writes the analysis (a model the platform documents, see --allow-unlisted-model)")
        ->capture_default_str()
        ->group(py);
    a.add_option("--tool-model", cfg.tool_model, "Model that runs the web_search tool (--search-via tool)")
        ->capture_default_str()
        ->group(py);
    a.add_flag("--quiet", quiet, "No progress or summary on the console")->group(py);
    add_api(a);
    add_platform(a);
    add_reliability(a, service);
    add_output(a, service);
  }

  // Where requests go and what they carry.
  void add_api(CLI::App& a) {
    a.add_option("--base-url", base_url,
                 "API base URL (env BIGMODEL_BASE_URL, ZHIPUAI_BASE_URL, ZAI_BASE_URL; default " +
                     std::string(kDefaultBaseUrl) + ")")
        ->group(input);
    a.add_flag("--allow-insecure-http", allow_insecure_http,
               "Allow sending the key (and the LangSmith key) over plain http:// to a non-loopback host")
        ->group(input);
    a.add_flag(
         "--no-search", [this](std::int64_t) { cfg.search = false; },
         "Skip the search step; the chat model answers alone")
        ->group(input);
    a.add_option(
         "--api-flavor", api_flavor,
         "Request fields to send: bigmodel (BigModel's own: thinking, request_id, web_search; also\n"
         "for gateways in front of it) | openai (only what api.openai.com accepts; needs --no-search)")
        ->check(CLI::IsMember({"bigmodel", "openai"}))
        ->capture_default_str()
        ->group(input);
    a.add_option(
         "--accept-language", cfg.accept_language,
         "Sent as Accept-Language (e.g. en-US,en: the platform's messages in English); default: not sent")
        ->group(input);
    a.add_option(
         "--prompt-file", prompt_file,
         "Prompt templates: sections [search.system] [search.user] [analysis.system] [analysis.user]\n"
         "with {topic} and {sources} placeholders, and {name} for a JSONL/CSV row's field")
        ->check(CLI::ExistingFile)
        ->group(input);
    a.add_flag("--stream", cfg.stream, "Ask for server-sent-event streams")->group(input);
  }

  // Timeouts, pacing, quotas and worker restarts.
  void add_reliability(CLI::App& a, bool service) {
    a.add_option("--kill-grace", kill_grace_s, "Seconds between SIGTERM and SIGKILL for a timed-out attempt")
        ->check(CLI::Range(0.0, 600.0))
        ->capture_default_str()
        ->group(rel);
    a.add_option("--drain-grace", drain_grace_s,
                 service ? "Seconds accepted requests may finish after TERM/INT"
                         : "Seconds in-flight tasks may finish after TERM/INT")
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str()
        ->group(rel);
    a.add_option("--rpm", cfg.requests_per_minute,
                 "Requests a minute at most, all models together (paced evenly from the start, no\n"
                 "burst); 0 = no cap")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{100000000}))
        ->group(rel);
    a.add_option("--tpm", cfg.tokens_per_minute,
                 "Tokens (prompt + completion) a minute at most; attempts reserve an estimate,\n"
                 "corrected from the answers' usage; 0 = no cap")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000000000000}))
        ->group(rel);
    a.add_option("--on-quota", on_quota,
                 "What a usage cap (codes 1308/1310, \"your limit will reset at ...\") does: wait (no task\n"
                 "starts until the reset time the platform names, then the run goes on) | stop (abort,\n"
                 "exit 3; --resume continues later)")
        ->check(CLI::IsMember({"wait", "stop"}))
        ->capture_default_str()
        ->group(rel);
    a.add_flag("--accept-incomplete", cfg.accept_incomplete,
               "Count an analysis cut short (finish_reason length or model_context_window_exceeded) or\n"
               "empty as a success; by default it fails the task, its partial text kept in the report")
        ->group(rel);
    a.add_option("--max-restarts", cfg.max_restarts,
                 "Abort (exit 3) after more worker restarts than this within --restart-period while no task "
                 "finishes (workers killed from outside while work goes on are restarted without limit)")
        ->check(CLI::Range(0, 1000000))
        ->capture_default_str()
        ->group(rel);
    a.add_option("--restart-period", restart_period_s, "Window in seconds for --max-restarts")
        ->check(CLI::Range(0.001, 86400.0))
        ->capture_default_str()
        ->group(rel);
  }

  // What the run writes besides its report: the log, the results stream, metrics, progress.
  void add_output(CLI::App& a, bool service) {
    a.add_option("--log-file", log_file, "Log file")->capture_default_str()->group("Output");
    a.add_option("--results-jsonl", results_jsonl,
                 service ? "Append every finished task's record to this file as one JSON line, as it\n"
                           "finishes (the report's results[i] shape); truncated at start"
                         : "Write every finished task's record as one JSON line, as it finishes (the\n"
                           "report's results[i] shape; '-' = stdout); truncated at start, appended with --resume")
        ->type_name("PATH")
        ->group("Output");
    a.add_option("--output-mode", output_mode,
                 service ? "Octal mode of the --results-jsonl file, 0600 to 0777 (e.g. 0644), whatever the\n"
                           "umask; the log is always 0600"
                         : "Octal mode of the report and the --results-jsonl file, 0600 to 0777 (e.g. 0644),\n"
                           "whatever the umask; the journal and the log are always 0600")
        ->type_name("MODE")
        ->capture_default_str()
        ->group("Output");
    a.add_option("--metrics-addr", metrics_addr,
                 "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; port 0 = any\n"
                 "free port, logged); off by default")
        ->type_name("HOST:PORT")
        ->group("Output");
    a.add_option("--progress-interval", progress_interval_s,
                 "Seconds between progress lines when stderr is not a terminal (a terminal gets a live line)")
        ->check(CLI::Range(0.1, 86400.0))
        ->capture_default_str()
        ->group("Output");
  }

  // What is sent to the platform besides the messages (README "Talking to the platform").
  void add_platform(CLI::App& a) {
    a.add_option("--temperature", cfg.temperature, "Sampling temperature, 0 to 1")
        ->capture_default_str()
        ->group(platform);
    a.add_option("--top-p", cfg.top_p, "Nucleus sampling, above 0 up to 1")
        ->capture_default_str()
        ->group(platform);
    a.add_option("--max-tokens", cfg.max_tokens,
                 "Most tokens an answer may have, 1 to 131072 (and the model's limit)")
        ->capture_default_str()
        ->group(platform);
    a.add_option(
         "--thinking", thinking,
         "enabled | disabled | auto (auto sends no thinking field: the platform's default, enabled).\n"
         "GLM-5.x and GLM-4.7 think whenever it is enabled, which costs tokens")
        ->check(CLI::IsMember({"enabled", "disabled", "auto"}))
        ->capture_default_str()
        ->group(platform);
    a.add_option(
         "--response-format", response_format,
         "text | json (the analysis step asks for a JSON object; an answer that is not one fails the\n"
         "task as invalid_json)")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str()
        ->group(platform);
    a.add_flag("--keep-reasoning", cfg.keep_reasoning,
               "Keep each step's reasoning_content (thinking) in the report and the journal")
        ->group(platform);
    a.add_option(
         "--search-via", search_via,
         "tool (a chat call of --tool-model with the web_search tool) | api (POST {base}/web_search:\n"
         "the Web Search API, no tokens for the search step)")
        ->check(CLI::IsMember({"tool", "api"}))
        ->capture_default_str()
        ->group(platform);
    a.add_option(
         "--search-engine", cfg.search_engine,
         "search_std | search_pro | search_pro_sogou | search_pro_quark (BigModel) | search_pro_jina |\n"
         "search-prime (Z.AI); always sent")
        ->capture_default_str()
        ->group(platform);
    a.add_option("--search-recency", cfg.search_recency, "oneDay | oneWeek | oneMonth | oneYear | noLimit")
        ->capture_default_str()
        ->group(platform);
    a.add_option("--search-domain", cfg.search_domain, "Search within this one domain (e.g. www.example.com)")
        ->group(platform);
    a.add_option("--search-count", cfg.search_count, "Search results, 1 to 50")
        ->capture_default_str()
        ->group(platform);
    a.add_option("--search-content-size", cfg.search_content_size,
                 "medium (about 500 characters a result) | high (about 2,500)")
        ->capture_default_str()
        ->group(platform);
    a.add_flag("--allow-unlisted-model", cfg.allow_unlisted_model,
               "Accept a --chat-model/--tool-model the platform does not document (a private alias, another\n"
               "server); unchecked anyway with --api-flavor openai")
        ->group(platform);
  }

  // The enumerated model and search settings (checked with the rest by the library's config_problem).
  void platform_config() {
    namespace pub = concurrent_bigmodel;
    cfg.api_flavor = api_flavor == "openai" ? pub::ApiFlavor::openai : pub::ApiFlavor::bigmodel;
    cfg.thinking = thinking == "enabled" ? pub::Thinking::enabled
                   : thinking == "auto"  ? pub::Thinking::automatic
                                         : pub::Thinking::disabled;
    cfg.response_format = response_format == "json" ? pub::ResponseFormat::json : pub::ResponseFormat::text;
    cfg.search_via = search_via == "api" ? pub::SearchVia::api : pub::SearchVia::tool;
  }

  // Batch runs only.
  void add_batch(CLI::App& app) {
    // Each --topics replaces the list of the one before (argparse's last-wins, for a list).
    app.add_option("--topics", inv.topics, "Topics to analyse (default: 5 sample topics)")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->trigger_on_parse()
        ->group(py);
    app.add_option("--iterations", inv.iterations, "Rounds over the topic list; 0 = until TERM/INT")
        ->check(CLI::Range(0, 1000000000))
        ->capture_default_str()
        ->group(py);
    app.add_option("--output", output, "Report file (default: concurrent_bigmodel_report_<time>.json)")
        ->group(py);
    app.add_option("--batch-size", cfg.batch_size,
                   "Topics dispatched ahead of the workers; 0 = 4 x concurrency")
        ->check(CLI::Range(0, 1000000))
        ->capture_default_str()
        ->group(py);
    app.add_option("--topics-file", inv.topics_file,
                   "Read topics from a file ('-' = stdin): one per line, or JSONL/CSV rows of a topic and\n"
                   "fields (README \"Row inputs\"), by the extension (.jsonl .ndjson .csv) or --input-format")
        ->group(input);
    app.add_option("--input-format", input_format,
                   "Format of --topics-file: text | jsonl | csv (default: by the file's extension; text\n"
                   "for stdin)")
        ->check(CLI::IsMember({"text", "jsonl", "csv"}))
        ->group(input);
    app.add_option("--journal", journal,
                   "Append every finished task to this JSONL file (default: beside the report, "
                   "<report>.journal.jsonl)")
        ->group("Output");
    app.add_flag("--resume", cfg.resume,
                 "Continue the run recorded in the journal: finished topics are not sent again")
        ->group("Output");
    app.add_flag("--force-resume", cfg.force_resume,
                 "Resume even if the journal was written with other models or prompts")
        ->group("Output");
    app.add_flag("--fresh", cfg.fresh,
                 "Start over even if the journal holds results of a run that did not finish (stopped,\n"
                 "aborted or killed), discarding them; without it such a run is refused (exit 2)")
        ->group("Output");
    app.add_option("--keep-rounds", keep_rounds,
                   "Rounds kept in the journal and report (default: all; 10 with --iterations 0)")
        ->check(CLI::Range(0, 1000000))
        ->group("Output");
    add_cost(app);
    add_via(app);
  }

  // README "Cheaper runs": the Batch API (a batch run's; not serve's).
  void add_via(CLI::App& app) {
    const char* group = "Cost";
    app.add_option("--via", via,
                   "online: a chat call per attempt | batch: the analysis step goes through the Batch API\n"
                   "(half price, answers within the batch's window, 24 h target; --timeout then applies to\n"
                   "online steps only). The search step runs online first: the platform's batch FAQ does not\n"
                   "list the web_search tool; for big batch runs use --search-via api (no model tokens) or\n"
                   "--no-search. --mode does not matter with batch. TERM/INT: the waiting lines are\n"
                   "cancelled, the batch goes on, --resume collects it (README \"Cheaper runs\")")
        ->check(CLI::IsMember({"online", "batch"}))
        ->capture_default_str()
        ->group(group);
    app.add_option("--batch-retry", batch_retry,
                   "An expired or cancelled batch's unanswered lines, within --max-retries: batch (a new\n"
                   "batch, half price) | online (full price, now) | none (the tasks fail)")
        ->check(CLI::IsMember({"batch", "online", "none"}))
        ->capture_default_str()
        ->group(group);
    app.add_flag("--cancel-batch-on-stop", cfg.cancel_batch_on_stop,
                 "TERM/INT cancels the batches in progress (default: they go on, paid for, and --resume\n"
                 "collects them)")
        ->group(group);
    // Hidden: the platform's cap is the right size; a smaller one splits a run into more files.
    app.add_option("--batch-max-lines", cfg.batch_max_lines, "")->group("");  // 1..50000: config_problem
  }

  void via_config() {
    namespace pub = concurrent_bigmodel;
    cfg.via = via == "batch" ? pub::Via::batch : pub::Via::online;
    cfg.batch_retry = batch_retry == "online" ? pub::BatchRetry::online
                      : batch_retry == "none" ? pub::BatchRetry::none
                                              : pub::BatchRetry::batch;
  }

  // README "Cheaper runs": the dry run, the price table and budgets (a batch run's; not serve's).
  void add_cost(CLI::App& app) {
    const char* group = "Cost";
    app.add_flag("--dry-run", inv.dry_run,
                 "Read the input and settings as a run would, send nothing, and print the topics, requests\n"
                 "per step and model, estimated tokens and cost (online and via batch); with --output, the\n"
                 "estimate as JSON there (no report, no journal). Exit 0")
        ->group(group);
    app.add_option("--price-file", price_file,
                   "Price table JSON: per model input_per_million and output_per_million, search_per_call per\n"
                   "engine, currency, date (default: the bundled estimate; README \"Cheaper runs\")")
        ->group(group);
    app.add_option("--max-tokens-total", cfg.max_tokens_total,
                   "Budget: once the run has used this many tokens (prompt + completion, as the platform\n"
                   "reports them; --resume's restored results count) nothing new starts, tasks in flight\n"
                   "finish, the rest is cancelled, exit 3 (reason budget). 0 = no limit")
        ->capture_default_str()
        ->group(group);
    app.add_option("--max-cost", cfg.max_cost,
                   "Budget in the price table's currency, by the price table over the reported usage\n"
                   "(as --max-tokens-total). Every model and search engine used needs a price. 0 = no limit")
        ->capture_default_str()
        ->group(group);
    app.add_option("--budget-period", budget_period,
                   "run: the budget is the whole run's | day: it starts over at local midnight (TZ) and a\n"
                   "reached budget pauses dispatch until then instead of ending the run (for monitors)")
        ->check(CLI::IsMember({"run", "day"}))
        ->capture_default_str()
        ->group(group);
  }

  CLI::App* add_serve(CLI::App& app) {
    CLI::App* serve =
        app.add_subcommand("serve",
                           "Run as an HTTP service: POST /analyze a batch of topics, get its report "
                           "(`concurrent_bigmodel serve --help`)");
    serve->footer(kServeFooter);
    const std::string svc = "Service";
    serve
        ->add_option("--listen", listen, "Address to serve on, HOST:PORT ([v6]:PORT; port 0 = any free port)")
        ->capture_default_str()
        ->group(svc);
    serve
        ->add_option("--max-topics", serve_options.max_topics, "Most topics one request may hold (more: 400)")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str()
        ->group(svc);
    serve
        ->add_option("--max-queued-topics", serve_options.max_queued_topics,
                     "Most topics waiting to run over all requests (more: 503 with Retry-After)")
        ->check(CLI::Range(1, 100000000))
        ->capture_default_str()
        ->group(svc);
    serve
        ->add_option("--auth-token-file", auth_token_file,
                     "File holding a bearer token POST /analyze must present (first line; /healthz stays open)")
        ->group(svc);
    add_pool(*serve, true);
    return serve;
  }

  // The fleet's commands (docs/fleet.md): each names its Redis and its job.
  void add_fleet_target(CLI::App& a) {
    const char* g = "Fleet";
    a.add_option("--redis", fleet.redis_url,
                 "Redis URL redis://[user:password@]host:port/db (the password better in CBM_REDIS_PASSWORD)")
        ->required()
        ->group(g);
    a.add_option("--job", fleet.job, "The job's name: 1 to 64 letters, digits, '.', '_' or '-'")->required()->group(g);
    a.add_option("--redis-wait", fleet.redis_wait_s,
                 "Seconds to wait for an unavailable Redis before giving up (exit 3)")
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str()
        ->group(g);
  }
  std::vector<CLI::App*> add_fleet(CLI::App& app) {
    CLI::App* submit = app.add_subcommand(
        "submit", "Enqueue a topics file as a fleet's job in Redis (resumable; prints the job's name)");
    add_fleet_target(*submit);
    submit->add_option("--topics-file", fleet.topics_file, "Topics to enqueue (as a run reads them)")
        ->required()
        ->group("Fleet");
    submit->add_option("--input-format", input_format, "text | jsonl | csv (default: from the file's extension)")
        ->check(CLI::IsMember({"text", "jsonl", "csv"}))
        ->group("Fleet");
    submit->add_option("--iterations", fleet.iterations,
                       "Rounds over the list. Other than 1: a fleet monitor (0 = until TERM/INT): this\n"
                       "submit leads (or stands by to lead) and enqueues each round once the one before\n"
                       "is complete, --delay seconds later")
        ->check(CLI::Range(0, 1000000))
        ->capture_default_str()
        ->group("Fleet");
    submit->add_option("--leader-lease", fleet.leader_lease_s,
                       "A monitor's leader lease in seconds: a standby submit takes over within this long\n"
                       "after the leader dies (renewed every third of it)")
        ->check(CLI::Range(1.0, 3600.0))
        ->capture_default_str()
        ->group("Fleet");
    add_pool(*submit, false);
    CLI::App* work = app.add_subcommand(
        "work", "Run as a fleet's node: take the job's tasks from Redis, run them, write their results");
    add_fleet_target(*work);
    work->add_option("--lease-grace", fleet.lease_grace_s,
                     "Seconds added to --timeout x (--max-retries + 1) for a task's lease: idle longer, any\n"
                     "node may take it over")
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str()
        ->group("Fleet");
    work->add_option("--node-name", fleet.node_name, "This node's name in the job (default: hostname-pid)")
        ->group("Fleet");
    work->add_option("--fleet-concurrency", fleet.fleet_concurrency,
                     "Attempts in flight across the whole fleet, for every node using this API key\n"
                     "(a lease per attempt in Redis; a dead node's leases expire after --fleet-lease);\n"
                     "0 = no fleet-wide limit, only each node's --concurrency")
        ->capture_default_str()
        ->group("Fleet");
    work->add_option("--fleet-lease", fleet.fleet_lease_s,
                     "Seconds a fleet lease lives unless renewed (every third of it): how long a dead\n"
                     "node's share of --fleet-concurrency stays taken (1 to 3600)")
        ->capture_default_str()
        ->group("Fleet");
    work->add_option("--fleet-rpm", fleet.fleet_rpm,
                     "Requests a minute at most across the whole fleet, for every node using this API key\n"
                     "(a sliding 60 s window of request starts in Redis; as --rpm counts them);\n"
                     "0 = no fleet-wide cap, only each node's --rpm")
        ->capture_default_str()
        ->group("Fleet");
    work->add_option("--fleet-tpm", fleet.fleet_tpm,
                     "Tokens (prompt + completion) a minute at most across the whole fleet, for every node\n"
                     "using this API key (as --tpm: an estimate reserved at the start, corrected from the\n"
                     "answers' usage, in Redis); 0 = no fleet-wide cap, only each node's --tpm")
        ->capture_default_str()
        ->group("Fleet");
    work->add_option("--node-journal", fleet.node_journal,
                     "File where finished records wait while Redis is unavailable, written again by the\n"
                     "next node started with it (default: none, they wait in memory)")
        ->group("Fleet");
    add_pool(*work, false);
    CLI::App* collect = app.add_subcommand("collect", "Write a fleet job's report (the local run's format)");
    add_fleet_target(*collect);
    collect->add_option("--output", fleet.output, "Report file")->required()->group("Fleet");
    collect->add_flag("--follow", fleet.follow, "Keep the report current until the job is complete")->group("Fleet");
    collect->add_option("--round", fleet.round,
                        "A fleet monitor's round to report (Redis keeps the current one and the one before;\n"
                        "default: the newest complete one)")
        ->check(CLI::Range(1u, 4000000000u))
        ->group("Fleet");
    CLI::App* status = app.add_subcommand("status", "Print a fleet job's counts and nodes");
    add_fleet_target(*status);
    return {submit, work, collect, status};
  }

  // `work`'s fleet-wide limits, checked by fleet::validate; its field names become the flags'.
  std::optional<std::string> fleet_limits() const {
    try {
      fleet::validate(fleet::FleetLimitSettings{
          fleet.fleet_concurrency, std::chrono::milliseconds(static_cast<long long>(fleet.fleet_lease_s * 1000.0))});
      fleet::validate(fleet::FleetRateSettings{fleet.fleet_rpm, fleet.fleet_tpm});
    } catch (const std::invalid_argument& e) {
      std::string text = e.what();
      for (const auto& [field, flag] : {std::pair{"fleet_concurrency", "--fleet-concurrency"},
                                        std::pair{"fleet_lease", "--fleet-lease"},
                                        std::pair{"fleet_rpm", "--fleet-rpm"}, std::pair{"fleet_tpm", "--fleet-tpm"}}) {
        if (text.rfind(field, 0) != 0) continue;
        std::string named = flag;
        named += text.substr(std::strlen(field));
        text = std::move(named);
      }
      return text;
    }
    // An attempt with web search sends two requests; a window of one request would never admit it.
    if (cfg.search && fleet.fleet_rpm == 1) {
      return "--fleet-rpm must be 2 or more with web search (an attempt sends 2 requests), not 1; or give "
             "--no-search";
    }
    return std::nullopt;
  }

  // A fleet command's own checks; the Redis password given in the URL is blanked out of argv.
  std::optional<std::string> fleet_config(int argc, char** argv) {
    if (auto problem = fleet::job_name_problem(fleet.job)) return "--job: " + *problem;
    // A node's name follows the job's rule (it is a consumer name in Redis, and in logs and status).
    if (!fleet.node_name.empty()) {
      if (auto problem = fleet::job_name_problem(fleet.node_name)) {
        std::string text = "--node-name: ";
        text += *problem;
        const auto at = text.find("is not a job name");
        if (at != std::string::npos) text.replace(at, std::strlen("is not a job name"), "is not a node name");
        return text;
      }
    }
    try {
      const auto url = redis::parse_redis_url(fleet.redis_url, std::getenv("CBM_REDIS_PASSWORD"));
      (void)url;
    } catch (const std::invalid_argument& e) {
      return std::string("--redis: ") + e.what();
    }
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      char* value = nullptr;
      if (arg == "--redis" && i + 1 < argc) {
        value = argv[i + 1];
      } else if (arg.starts_with("--redis=")) {
        value = argv[i] + std::strlen("--redis=");
      }
      if (value == nullptr) continue;
      // redis://user:PASSWORD@host: the characters between the first ':' after the scheme and the last '@'.
      std::string_view v(value);
      const auto at = v.rfind('@');
      const auto colon = v.find(':', std::strlen("redis://"));
      const auto from = colon != std::string_view::npos && colon < at ? colon + 1 : std::strlen("redis://");
      if (at != std::string_view::npos && from < at) std::memset(value + from, '*', at - from);
    }
    return std::nullopt;
  }

  // The pool's settings, checked (the key given as a flag is blanked out of argv).
  std::optional<std::string> pool_config(int argc, char** argv) {
    using concurrent_bigmodel::Mode;
    cfg.mode = mode == "threading" ? Mode::threading
               : mode == "asyncio" ? Mode::asyncio
                                   : Mode::multiprocessing;
    cfg.on_quota = on_quota == "stop" ? concurrent_bigmodel::OnQuota::stop : concurrent_bigmodel::OnQuota::wait;
    cfg.timeout = seconds_to_ms(timeout_s);
    cfg.delay = seconds_to_ms(delay_s);
    cfg.kill_grace = seconds_to_ms(kill_grace_s);
    cfg.progress_interval = seconds_to_ms(progress_interval_s);
    cfg.drain_grace = seconds_to_ms(drain_grace_s);
    cfg.restart_period = seconds_to_ms(restart_period_s);
    cfg.console = !quiet;
    platform_config();
    via_config();  // serve has no --via: its defaults (online)
    cfg.base_url = resolve_base_url(base_url, kDefaultBaseUrl);
    cfg.allow_insecure_http = allow_insecure_http;

    auto key = resolve_api_key(api_key);
    // submit only writes the job's settings: it sends nothing, so it needs no key.
    if (!key && key_optional) key = std::string("(not needed by submit)");
    if (!key) return std::string("no API key: pass --api-key or set ") + kApiKeyVariables;
    cfg.api_key = std::move(*key);
    // The key given as a flag is readable in /proc/<pid>/cmdline for as long as we run: blank it out.
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      char* secret = nullptr;
      if (arg == "--api-key" && i + 1 < argc) {
        secret = argv[i + 1];
      } else if (arg.starts_with("--api-key=")) {
        secret = argv[i] + std::strlen("--api-key=");
      }
      if (secret != nullptr) std::memset(secret, '*', std::strlen(secret));
    }

    if (!prompt_file.empty()) {
      std::string error;
      const std::string text = read_file(prompt_file, error);
      if (!error.empty()) return "--prompt-file: " + error;
      cfg.prompts = text;
    }

    // The text is octal here; its range is the library's rule (config_problem).
    if (output_mode.empty() || output_mode.size() > 4 || output_mode.find_first_not_of("01234567") != std::string::npos) {
      return "--output-mode: '" + output_mode + "' is not an octal mode from 0600 to 0777 (e.g. 0644)";
    }
    cfg.output_mode = static_cast<unsigned>(std::stoul(output_mode, nullptr, 8));
    cfg.log_file = log_file;
    if (!log_file.empty()) {
      const auto log_dir =
          cfg.log_file.has_parent_path() ? cfg.log_file.parent_path() : std::filesystem::path(".");
      if (::access(log_dir.c_str(), W_OK | X_OK) != 0) {
        return "--log-file: cannot write to directory '" + log_dir.string() + "': " + std::strerror(errno);
      }
    }
    cfg.worker_executable = worker_beside_self();
    cfg.metrics_address = metrics_addr;
    // The library's one check, its field named by our flag.
    if (auto problem = config_problem(cfg)) return flag_of(*problem) + ": " + problem->message;
    return std::nullopt;
  }

  std::optional<std::string> serve_config(const CLI::App& app) {
    // Batch flags given before the word `serve` reach the main parser: refused here.
    for (const char* batch : {"--topics", "--iterations", "--output", "--batch-size", "--topics-file",
                              "--input-format", "--journal", "--resume", "--force-resume", "--fresh",
                              "--keep-rounds", "--dry-run", "--price-file", "--max-tokens-total", "--max-cost",
                              "--budget-period"}) {
      if (app.count(batch) > 0) {
        return std::string(batch) + ": not an option of serve (each request brings its topics)";
      }
    }
    auto address = parse_listen_address(listen);
    if (!address) return "--listen: '" + listen + "' is not HOST:PORT";
    if (results_jsonl == "-") return "--results-jsonl: '-' is not for serve (stdout carries its address line)";
    cfg.results_jsonl = results_jsonl;
    serve_options.listen = *address;
    if (!auth_token_file.empty()) {
      std::string error;
      std::string token = read_file(auth_token_file, error);
      if (!error.empty()) return "--auth-token-file: " + error;
      token = token.substr(0, token.find_first_of("\r\n"));
      if (token.empty()) return "--auth-token-file: '" + auth_token_file + "' holds no token on its first line";
      if (token.find_first_of(" \t") != std::string::npos || token.size() > 4096) {
        return "--auth-token-file: '" + auth_token_file + "': the token must be one word of at most 4096 bytes";
      }
      serve_options.auth_token = std::move(token);
    }
    return std::nullopt;
  }

  // Where the topics come from; stdin is read here, once.
  std::optional<std::string> batch_input() {
    if (!input_format.empty() && inv.topics_file.empty()) return "--input-format: only with --topics-file";
    if (!inv.topics_file.empty()) {
      if (!inv.topics.empty()) return "--topics and --topics-file: give one or the other";
      const InputFormat format = !input_format.empty() ? *input_format_from_string(input_format)
                                 : inv.topics_file == "-" ? InputFormat::text
                                                          : input_format_of_path(inv.topics_file);
      cfg.input_format = public_format(format);
      if (inv.topics_file == "-") {
        if (auto problem = read_stdin(format)) return *problem;
        inv.topics_file.clear();
      } else {
        // Not opened here: a FIFO's writer would take the check for the reader (input_stream.hpp).
        if (auto problem = input_path_problem(inv.topics_file); !problem.empty()) return "--topics-file: " + problem;
      }
    }
    for (auto& t : inv.topics) {
      auto topic = checked_topic(t);
      if (!topic) {
        if (topic.error().kind == TopicProblem::Kind::empty) return "--topics: a topic is empty";
        return "--topics: '" + t.substr(0, 80) + "' " + topic.error().what;
      }
      t = std::move(topic).value();
    }
    if (inv.topics.empty() && inv.topics_file.empty()) inv.topics = kDefaultTopics;
    return std::nullopt;
  }

  // Stdin, read once into `topics` (text) or `rows`; its bad lines are reported here.
  std::optional<std::string> read_stdin(InputFormat format) {
    HeldInput held;
    try {
      const PromptSet prompts = cfg.prompts.empty() ? PromptSet::defaults() : PromptSet::from_file_text(cfg.prompts).value();
      held = read_held_input(stdin, InputSpec{format, prompts.field_names()});
      for (auto& row : held.rows) {
        if (format == InputFormat::text) {
          inv.topics.push_back(std::move(row.topic));
          continue;
        }
        concurrent_bigmodel::Row r{std::move(row.topic), {}};
        for (auto& f : row.fields) r.fields.emplace_back(std::move(f.name), std::move(f.value));
        inv.rows.push_back(std::move(r));
      }
    } catch (const std::invalid_argument& e) {
      return std::string("--topics-file -: ") + e.what();
    }
    for (const auto& bad : held.invalid) {
      std::cerr << "concurrent_bigmodel: stdin line " << bad.line_number << " skipped: " << bad.reason << "\n";
    }
    if (held.invalid_count > held.invalid.size()) {
      std::cerr << "concurrent_bigmodel: " << held.invalid_count - held.invalid.size()
                << " more invalid stdin lines skipped (" << held.invalid_count << " in all)\n";
    }
    if (inv.topics.empty() && inv.rows.empty()) {
      return "--topics-file -: " + no_topics_message("standard input", held.lines, held.invalid_count);
    }
    return std::nullopt;
  }

  static concurrent_bigmodel::InputFormat public_format(InputFormat f) {
    switch (f) {
      case InputFormat::jsonl:
        return concurrent_bigmodel::InputFormat::jsonl;
      case InputFormat::csv:
        return concurrent_bigmodel::InputFormat::csv;
      case InputFormat::text:
        break;
    }
    return concurrent_bigmodel::InputFormat::text;
  }

  // The run's files: one rule (run_files.hpp: regular files, five different ones), named by flag.
  std::optional<std::string> run_files() {
    cfg.results_jsonl = results_jsonl;
    RunConfig paths;
    paths.topics_file = inv.topics_file;
    paths.output = cfg.output;
    paths.journal = cfg.journal;
    paths.log_file = cfg.log_file;
    paths.results_jsonl = cfg.results_jsonl;
    if (auto problem = run_paths_problem(run_paths(paths))) return problem->text(true);
    return std::nullopt;
  }

  // The budget and price table (the library's cost_problem, its fields named by our flags); a dry run's
  // --output is the estimate's, taken before batch_output names a default report.
  std::optional<std::string> cost_settings() {
    cfg.budget_period = budget_period == "day" ? concurrent_bigmodel::BudgetPeriod::day
                                               : concurrent_bigmodel::BudgetPeriod::run;
    cfg.price_file = price_file;
    if (inv.dry_run) inv.dry_run_output = output;
    if (auto problem = cost_problem(cfg)) return flag_of(*problem) + ": " + problem->message;
    if (inv.dry_run) {
      if (auto problem = dry_run_problem(cfg.resume)) {
        std::string text = "--dry-run with ";
        text += flag_of(*problem);
        text += ": ";
        text += problem->message;
        return text;
      }
    }
    return std::nullopt;
  }

  // The report, the journal and --resume's checks.
  std::optional<std::string> batch_output() {
    const bool output_was_default = output.empty();
    if (output.empty()) {
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char name[64];
      std::strftime(name, sizeof name, "concurrent_bigmodel_report_%Y%m%d_%H%M%S.json", &tm);
      output = name;
    }
    cfg.output = output;
    const auto out_dir = cfg.output.has_parent_path() ? cfg.output.parent_path() : std::filesystem::path(".");
    if (::access(out_dir.c_str(), W_OK | X_OK) != 0) {
      return "--output: cannot write to directory '" + out_dir.string() + "': " + std::strerror(errno);
    }
    cfg.journal = journal.empty() ? cfg.output.parent_path() / (cfg.output.stem().string() + ".journal.jsonl")
                                  : std::filesystem::path(journal);
    if (cfg.resume && output_was_default && journal.empty()) {
      return "--resume: name the run to resume with --output (or --journal)";
    }
    if (cfg.resume && !std::filesystem::exists(cfg.journal)) {
      return "--resume: no journal at '" + cfg.journal.string() + "'";
    }
    cfg.keep_rounds = keep_rounds >= 0 ? keep_rounds : (inv.iterations == 0 ? 10 : 0);
    return std::nullopt;
  }
};

// The long names ("--delay") of the options that take one value, in `apps`.
std::set<std::string> single_valued_options(std::initializer_list<const CLI::App*> apps) {
  std::set<std::string> names;
  for (const CLI::App* a : apps) {
    for (const CLI::Option* opt : a->get_options()) {
      if (opt->get_type_size_max() != 1 || opt->get_items_expected_max() != 1) continue;
      for (const auto& name : opt->get_lnames()) names.insert("--" + name);
    }
  }
  return names;
}

// argv with every occurrence of a single-valued option but its last dropped: a repeated option takes
// its last value, as the Python tool's argparse does (scripts append overrides). CLI11 would check
// every value given, and refuse the repeat. Both `--name value` and `--name=value` count; nothing after
// `--` is touched.
std::vector<std::string> last_values_win(int argc, char** argv, const std::set<std::string>& single) {
  struct Occurrence {
    std::size_t at;
    std::size_t tokens;
  };
  std::map<std::string, std::vector<Occurrence>> seen;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    const std::string name(arg.substr(0, arg.find('=')));
    if (!single.contains(name)) continue;
    const bool inline_value = name.size() < arg.size();
    seen[name].push_back({static_cast<std::size_t>(i), inline_value || i + 1 == argc ? 1u : 2u});
    if (!inline_value) ++i;
  }
  std::vector<bool> dropped(static_cast<std::size_t>(argc), false);
  for (const auto& [name, list] : seen) {
    for (std::size_t k = 0; k + 1 < list.size(); ++k) {
      for (std::size_t t = 0; t < list[k].tokens; ++t) dropped[list[k].at + t] = true;
    }
  }
  std::vector<std::string> kept;
  for (int i = 0; i < argc; ++i) {
    if (!dropped[static_cast<std::size_t>(i)]) kept.emplace_back(argv[i]);
  }
  return kept;
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "Analyse topics with Zhipu BigModel (GLM): for each topic a tool model searches the web, then a\n"
      "chat model writes the analysis. Runs many topics concurrently and writes a JSON report.",
      "concurrent_bigmodel"};
  app.footer(kFooter);
  const std::string version = std::string("concurrent_bigmodel ") + kVersion;
  app.set_version_flag("--version", version);
  app.get_formatter()->column_width(34);

  f.add_pool(app, false);
  f.add_batch(app);
  CLI::App* serve = f.add_serve(app);
  const std::vector<CLI::App*> fleet = f.add_fleet(app);
  std::vector<std::string> kept =
      last_values_win(argc, argv, single_valued_options({&app, serve, fleet[0], fleet[1], fleet[2], fleet[3]}));
  std::vector<char*> kept_argv;
  for (auto& arg : kept) kept_argv.push_back(arg.data());
  try {
    app.parse(static_cast<int>(kept_argv.size()), kept_argv.data());
  } catch (const CLI::CallForHelp& e) {
    return {std::nullopt, kExitAllSucceeded, app.help(), std::nullopt, std::nullopt};
  } catch (const CLI::CallForVersion& e) {
    return {std::nullopt, kExitAllSucceeded, version, std::nullopt, std::nullopt};
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }

  for (std::size_t i = 0; i < fleet.size(); ++i) {
    if (!fleet[i]->parsed()) continue;
    using C = FleetInvocation::Command;
    f.fleet.command = i == 0 ? C::submit : i == 1 ? C::work : i == 2 ? C::collect : C::status;
    if (auto problem = f.fleet_config(argc, argv)) return usage_error(*problem);
    if (f.fleet.command == C::submit || f.fleet.command == C::work) {
      f.key_optional = f.fleet.command == C::submit;
      if (auto problem = f.pool_config(argc, argv)) return usage_error(*problem);
    }
    if (f.fleet.command == C::submit) {
      if (auto problem = input_path_problem(f.fleet.topics_file); !problem.empty()) {
        return usage_error("--topics-file: " + problem);
      }
      const InputFormat format = !f.input_format.empty() ? *input_format_from_string(f.input_format)
                                                         : input_format_of_path(f.fleet.topics_file);
      f.cfg.input_format = Flags::public_format(format);
    }
    if (f.fleet.command == C::work) {
      // A node's results go to Redis: no report, journal or topics of its own.
      f.cfg.output.clear();
      if (auto problem = f.fleet_limits()) return usage_error(*problem);
    }
    CommandLine cl;
    f.fleet.config = std::move(f.cfg);
    cl.fleet = std::move(f.fleet);
    return cl;
  }
  if (auto problem = f.pool_config(argc, argv)) return usage_error(*problem);
  if (serve->parsed()) {
    if (auto problem = f.serve_config(app)) return usage_error(*problem);
    CommandLine cl;
    cl.serve = ServeInvocation{std::move(f.cfg), std::move(f.serve_options)};
    return cl;
  }
  if (auto problem = f.batch_input()) return usage_error(*problem);
  if (auto problem = f.cost_settings()) return usage_error(*problem);
  if (auto problem = f.batch_output()) return usage_error(*problem);
  if (auto problem = f.run_files()) return usage_error(*problem);
  return {std::move(f.inv), 0, {}, std::nullopt, std::nullopt};
}

}  // namespace cbm
