// concurrent_bigmodel as a library: runs LLM analyses of topics against Zhipu's BigModel API (or any
// OpenAI-compatible server), many at once, in supervised worker processes or in threads.
//
//   concurrent_bigmodel::Config config;
//   if (const char* key = std::getenv("BIGMODEL_API_KEY")) config.api_key = key;
//   concurrent_bigmodel::Executor executor(config);
//   executor.on_result([](const concurrent_bigmodel::Result& r) { std::cout << r.topic << "\n"; });
//   concurrent_bigmodel::Report report = executor.execute_concurrent({"RISC-V adoption", "Fusion"});
//
// Guarantees (the command-line tool's, which is built on this header): every topic of every round
// ends in exactly one Result (succeeded, failed with a reason, or cancelled by a stop), or, if a stop
// came before it was read, in the round's NotRead range; an attempt
// never runs longer than Config::timeout (plus Config::kill_grace in multiprocessing mode); retries
// are classified (transient errors back off, task errors fail at once, run-fatal ones such as a bad key
// abort the run); the API key never appears in a log, a report, an error message or a child's argv.
//
// The library installs no signal handler, changes no signal mask or disposition, and leaves no thread
// or child process running once a call returns. A program that wants the CLI's signal behaviour
// forwards its signals itself (stop_by_signal, reload_topics, log_status). Multiprocessing mode needs
// SIGCHLD not to be ignored (SIG_IGN would make the kernel reap the workers; the run refuses to start).
// One process-wide change is made: a run raises the soft open-file limit to the hard one (asyncio
// at high concurrency needs a socket per task), and refuses to start when the concurrency cannot fit.
//
// Header only std types: the implementation (libcurl, Boost, the shared-memory channels) stays behind it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace concurrent_bigmodel {

// How the search step reaches the platform.
enum class SearchVia {
  tool,  // a chat call of tool_model with the web_search tool (the model's tokens are paid)
  api,   // POST {base_url}/web_search: the Web Search API, no model and no tokens for this step
};

// Which request fields may be sent: bigmodel sends BigModel's own (thinking, request_id, the web_search
// tool); openai only what api.openai.com accepts (and needs search = false).
enum class ApiFlavor { bigmodel, openai };

enum class Thinking {
  enabled,    // the model thinks (GLM-5.x and 4.7 always do then; their reasoning costs tokens)
  disabled,   // no thinking
  automatic,  // no `thinking` field: the platform's default (enabled from GLM-4.5 on)
};

enum class ResponseFormat {
  text,
  json,  // response_format json_object; an analysis that is not a JSON object fails (invalid_json)
};

enum class Mode {
  multiprocessing,  // worker processes: survives a crash or kill of any worker; timeouts enforced by signal
  threading,        // threads in this process: no extra processes; a crash takes the whole process
  asyncio,          // one event-loop thread driving every task with curl_multi: the most in flight per core; a crash takes the process
};

// Where the analysis step goes (README "Cheaper runs", docs/protocol.md "Batch API").
enum class Via {
  online,  // one chat call per attempt (the default)
  batch,   // a line of a Batch API file: half price, answers within the batch's window (24 h target);
           // the search step, when there is one, runs online first (the batch FAQ does not list the
           // web_search tool); `mode` does not matter (one event loop sends, polls and collects)
};

// What the unanswered lines of an expired or cancelled batch do, within max_retries.
enum class BatchRetry {
  batch,   // a line in a new batch (half price again; may take the window again)
  online,  // the analysis step online (full price, answered now)
  none,    // the task fails
};

// How run_file reads its file (README "Row inputs"): one topic per line, or rows of a topic and fields
// as JSONL (one object per line) or CSV (a header row with a `topic` column).
enum class InputFormat {
  by_extension,  // .jsonl/.ndjson: jsonl, .csv: csv, anything else: text
  text,
  jsonl,
  csv,
};

// A row's fields beside its topic, in the input's order: each is a `{name}` placeholder in the prompts,
// and is kept in the row's Result. Values are text (a JSONL number as written, a boolean as true/false).
using Fields = std::vector<std::pair<std::string, std::string>>;

// One row of input: a topic and its fields.
struct Row {
  std::string topic;
  Fields fields;
};

// What a usage cap (platform codes 1308/1310: "your limit will reset at <time>") does to a run.
enum class OnQuota {
  wait,  // no task starts until the reset time the platform names (a monitor keeps running), then go on
  stop,  // abort the run (exit 3 for the CLI); a resume continues it later
};

// Over what a budget (Config::max_tokens_total, max_cost) counts.
enum class BudgetPeriod {
  run,  // the whole run: reached, the run stops (exit 3)
  day,  // a local calendar day: reached, dispatch pauses until local midnight, then starts over
};

// Everything that decides how a run goes. The command-line flags map onto it one to one (--quiet is
// `console = false`, --prompt-file's contents go to `prompts`). Defaults are the CLI's, except that a
// library run writes no file (log, report, journal) unless asked and prints nothing.
struct Config {
  std::string api_key;  // required; secret: never logged, never put in a child's argv
  std::string base_url = "https://open.bigmodel.cn/api/paas/v4";  // http(s); `{base_url}/chat/completions`
  bool allow_insecure_http = false;  // send the key over plain http:// to a non-loopback host
  ApiFlavor api_flavor = ApiFlavor::bigmodel;
  std::string accept_language;  // sent as Accept-Language (e.g. "en-US,en"); empty: not sent

  Mode mode = Mode::multiprocessing;
  int concurrency = 4;                        // tasks in flight at once (>= 1)
  // Mode::multiprocessing only: the worker processes that run those tasks, each up to
  // ceil(concurrency / workers) attempts at once on its own event loop (1..concurrency); 0, the
  // default, is one process per task in flight. A worker that dies with several attempts runs each of
  // them again alone, so only a task that kills its worker alone is charged for the crash.
  int workers = 0;
  std::chrono::milliseconds timeout{120000};  // one attempt of one task
  std::chrono::milliseconds delay{500};       // a worker's pause between tasks, and the pause between rounds
  std::int64_t requests_per_minute = 0;  // --rpm: at most this many requests a minute, no first-minute burst; 0 = no cap
  std::int64_t tokens_per_minute = 0;    // --tpm: tokens (prompt + completion) a minute; 0 = no cap
  int max_retries = 2;                        // retries after the first attempt
  OnQuota on_quota = OnQuota::wait;           // a usage cap: wait for its reset, or stop the run
  // An analysis cut short (finish_reason length / model_context_window_exceeded) or empty: false fails
  // the task (error kind "incomplete", the partial text kept in Result::analysis); true accepts it.
  bool accept_incomplete = false;
  int batch_size = 0;                         // topics read ahead of the workers; 0 = 4 x concurrency
  // The Batch API (Via above). With Via::batch, `timeout` is the online search step's, not a line's:
  // a line waits for its batch (the platform cancels a batch after 7 days). On stop() the lines
  // waiting on a batch end cancelled at once, the record naming the batch; the batch goes on (resume
  // collects it) unless cancel_batch_on_stop. batch_max_lines: lines a file, 1..50000 (the platform's cap).
  Via via = Via::online;
  BatchRetry batch_retry = BatchRetry::batch;
  bool cancel_batch_on_stop = false;
  int batch_max_lines = 50000;

  std::string chat_model = "glm-4.5-air";  // writes the analysis
  std::string tool_model = "glm-4.5-air";  // runs the web_search tool (search_via tool)
  // A model the platform does not document is refused (std::invalid_argument) unless this is set
  // (private aliases, other servers); never checked in the openai flavour.
  bool allow_unlisted_model = false;
  bool search = true;                      // false: skip the search step
  bool stream = false;                     // ask for server-sent-event streams

  // Model settings, both chat steps alike (README "Talking to the platform"); checked before anything
  // is sent, never clamped.
  double temperature = 0.6;  // [0, 1]
  double top_p = 0.95;       // (0, 1]
  int max_tokens = 4096;     // 1..131072
  Thinking thinking = Thinking::disabled;
  ResponseFormat response_format = ResponseFormat::text;  // the analysis step's
  bool keep_reasoning = false;  // keep each step's reasoning_content in its Step (and the report)

  // The web search.
  SearchVia search_via = SearchVia::tool;
  std::string search_engine = "search_std";  // search_std | search_pro | search_pro_sogou | search_pro_quark
                                             // | search_pro_jina | search-prime
  std::string search_recency = "noLimit";      // oneDay | oneWeek | oneMonth | oneYear | noLimit
  std::string search_domain;                   // one domain to search within; empty: any
  int search_count = 5;                        // results, 1..50
  std::string search_content_size = "medium";  // medium (~500 characters a result) | high (~2500)
  // Prompt templates in the CLI's --prompt-file format (sections [search.system] [search.user]
  // [analysis.system] [analysis.user], {topic} and {sources} placeholders, and {name} for a row's
  // field); empty: the built-in ones. A placeholder the input has no field for fails the run's start.
  std::string prompts;
  InputFormat input_format = InputFormat::by_extension;  // run_file's

  // Cost (README "Cheaper runs"). Prices: a JSON price table (per model input_per_million and
  // output_per_million, search_per_call per engine, currency, date); empty: the bundled estimate. A
  // budget counts the whole run (records restored by resume included) over the usage the platform
  // reports; once reached nothing new starts, attempts in flight finish, the rest is cancelled and the
  // run ends aborted (exit 3, abort_reason "budget: ..."). BudgetPeriod::day starts it over at local
  // midnight, pausing dispatch until then instead. A max_cost needs a price for every model and search
  // engine the run uses (std::invalid_argument otherwise).
  std::filesystem::path price_file;
  std::int64_t max_tokens_total = 0;  // prompt + completion tokens; 0 = no limit
  double max_cost = 0;                // in the price table's currency; 0 = no limit
  BudgetPeriod budget_period = BudgetPeriod::run;

  // Files. The report is the CLI's JSON report (README "The report"), written atomically when the run
  // ends (and after every round of a multi-round run). The journal gets every result as it finishes;
  // it defaults to <report stem>.journal.jsonl beside the report, and there is none without a report
  // unless `journal` is set. `resume` continues the run recorded in the journal.
  std::filesystem::path output;
  std::filesystem::path journal;
  bool resume = false;
  bool force_resume = false;  // resume even if the journal was written with other models or prompts
  // A journal whose run did not finish (stopped, aborted or killed: no end-of-run line) and holds
  // results is never replaced by a new run: the run throws std::invalid_argument unless `resume`
  // continues it or `fresh` discards it. A finished journal is replaced either way.
  bool fresh = false;
  int keep_rounds = -1;       // rounds kept in the journal and report; 0 = all; -1 = 10 when iterations is 0, else all
  std::filesystem::path log_file;  // empty: no log
  // Every Result as one line of JSON (the report's `results[i]`), written and flushed as it becomes
  // final: a file a consumer can read while the run goes on ("-": standard output). A new run
  // truncates it, a resumed one appends. Must not be the report, the journal or the log. Empty: none.
  std::filesystem::path results_jsonl;
  // The mode of the report and the results file (0 to 0777, keeping the owner's read and write),
  // set whatever the umask. The journal and the log are always 0600. Every file the run writes must be
  // a regular file or absent (never a device, FIFO, directory or symbolic link), and the topics file,
  // report, journal, log and results file must be five different files: otherwise the run throws
  // std::invalid_argument naming the field. One run at a time per journal, in any process.
  unsigned output_mode = 0600;

  // Console: progress on stderr (a live line on a terminal, else a line every progress_interval),
  // warnings, errors.
  bool console = false;
  std::chrono::milliseconds progress_interval{10000};
  // Serve Prometheus metrics at http://HOST:PORT/metrics while a run lasts ("127.0.0.1:9464"; port 0:
  // any free port, written to the log). Empty: off.
  std::string metrics_address;

  // Supervision (multiprocessing mode).
  std::chrono::milliseconds kill_grace{2000};    // SIGTERM -> SIGKILL for a timed-out attempt
  std::chrono::milliseconds drain_grace{30000};  // in-flight tasks may finish this long after stop() (every mode)
  int max_restarts = 20;                         // more worker restarts than this within...
  std::chrono::milliseconds restart_period{10000};  // ...this window abort the run
  // The worker program (multiprocessing mode). Empty: the installed one, under the install prefix's
  // libexec/concurrent_bigmodel/ (the CMake package exports its path as concurrent_bigmodel_WORKER).
  std::filesystem::path worker_executable;
  // LangSmith tracing, configured as LangSmith's SDK reads it, from the environment when the Executor
  // is made: on when LANGSMITH_TRACING=true, with LANGSMITH_API_KEY, LANGSMITH_ENDPOINT and
  // LANGSMITH_PROJECT (LANGCHAIN_* when those are unset). False: never trace.
  bool langsmith_from_environment = true;
};

enum class Status { succeeded, failed, cancelled };

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
};

// A web page the search step found.
struct Source {
  std::string title;
  std::string link;
  std::string media;
  std::string publish_date;
};

// One call of the final attempt.
struct Step {
  std::string name;   // "search" | "analysis"
  std::string model;  // the search engine for a Web Search API call (search_via api)
  std::string finish_reason;
  Usage usage;
  std::chrono::milliseconds latency{0};
  std::string request_id;   // ours, sent with the call: the platform's records know it
  std::string response_id;  // the platform's id of its answer; empty when the call failed
  std::string reasoning;    // reasoning_content, with Config::keep_reasoning
  // Invalid UTF-8 sequences in the server's answer (or error text), each replaced by U+FFFD.
  std::size_t replaced_characters = 0;
};

// Why a task failed or was cancelled (the report's `error`).
struct Error {
  std::string error_class;  // "retryable" | "task_fatal" | "run_fatal" | "wait_until" (a usage cap)
  // "api" | "transport" | "timeout" | "protocol" | "content" | "invalid_json" | "crash" | "cancelled" |
  // "incomplete"
  std::string kind;
  int http_status = 0;      // 0 when no HTTP answer was received
  std::string code;         // the platform's error code ("1302"), empty when none
  std::string message;
};

// The terminal record of one topic in one round (the report's `results[i]`).
struct Result {
  std::uint64_t id = 0;     // the topic's position in the input (0-based)
  std::uint32_t round = 1;  // 1-based iteration
  std::string topic;
  Fields fields;  // the row's (empty for plain topics)
  Status status = Status::failed;
  std::string analysis;
  std::vector<Source> sources;
  std::vector<Step> steps;
  std::optional<Error> error;  // set unless succeeded
  int attempts = 0;
  int worker = -1;  // the worker slot of the final attempt; -1 when none ran
  Usage usage;      // over all attempts
  std::chrono::system_clock::time_point started{};
  std::chrono::system_clock::time_point finished{};
  std::chrono::milliseconds execution_time{0};  // first attempt's start -> terminal record, retries included
  std::optional<std::uint64_t> duplicate_of;    // a topic repeated in its round: the id whose record it copies

  bool success() const { return status == Status::succeeded; }
  // The Python tool's `error_message`: empty on success.
  std::string error_message() const { return error ? error->message : std::string(); }
};

// The topics of a round a stop left unread (the report's `not_read[i]`): ids first_id up to end_id
// (exclusive), or to the end of the input when its size was not known (end_id empty). They have no
// Result, but for those a resumed run restored from its journal (a resume's stop): `count` says how
// many have none. A resume (Config::resume) runs them.
struct NotRead {
  std::uint32_t round = 1;
  std::uint64_t first_id = 0;
  std::optional<std::uint64_t> end_id;
  std::optional<std::uint64_t> count;  // the range's topics without a Result; empty without end_id
};

// How a run ended (the report's `summary`).
struct Summary {
  std::size_t total_tasks = 0;  // Results (the topics a stop left unread have none: not_read)
  std::size_t successful_tasks = 0;
  std::size_t failed_tasks = 0;
  std::size_t cancelled_tasks = 0;
  // Topics a stop left unread, in no Result; empty when a range runs to the end of an input of unknown
  // size (a file the stop came in the middle of, without a count).
  std::optional<std::uint64_t> not_read = 0;
  std::size_t total_attempts = 0;
  Usage usage;
  std::chrono::milliseconds average_execution_time{0};
  bool interrupted = false;          // stop(), stop_now() or stop_by_signal() ended it early
  int interrupted_by_signal = 0;     // the signal given to stop_by_signal(); 0 when none
  std::optional<std::string> abort_reason;  // a run-fatal API error, workers that keep crashing...
  bool report_written = false;       // Config::output was written
  std::optional<std::string> report_error;  // why it was not, when it was asked for and not written
  // The run's usage priced by the run's price table (an estimate); nullopt when a model or search
  // engine it used has no price.
  std::optional<double> estimated_cost;
  std::string cost_currency;     // the price table's
  std::string price_table_date;  // when its prices were taken
  // The CLI's exit status: 0 every task succeeded, 1 some did not (failed or cancelled), 3 aborted,
  // 128+N stopped by stop_by_signal(N); 1 also when a requested report could not be written.
  int exit_status = 0;
};

// What a dry run found (Executor::estimate*): nothing is sent, no file written.
struct Estimate {
  std::size_t topics = 0;  // distinct topics of a round, after invalid lines and repeats
  std::string text;        // for the console: requests per step and model, tokens, cost online and via batch
  std::string json;        // the same as one JSON object (the CLI's --dry-run --output)
};

struct Report {
  Summary summary;
  std::vector<Result> results;  // in the order they finished
  std::vector<NotRead> not_read;
};

// Runs batches of topics. One run at a time per Executor (a second concurrent call throws
// std::logic_error); several Executors may run at once in one process, each with its own workers.
class Executor {
 public:
  // Checks `config` and throws std::invalid_argument naming the field when it is unusable (no key,
  // a base URL that is not http(s), bad prompt templates, a count out of range...).
  explicit Executor(Config config);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Called once per Result, the moment it is final, cancelled ones included (not for the Results a
  // resume restores from the journal: those count in the Summary only). In multiprocessing and asyncio
  // modes on the thread that called execute_concurrent/run; in threading mode on the worker threads (and on the
  // calling thread for tasks cancelled before they started); never two at once. It runs on the
  // critical path, so keep it short; it may call stop()/stop_now(), not start a run. If it throws, the
  // run stops at once and the exception is rethrown by the call. Set it before a run.
  void on_result(std::function<void(const Result&)> callback);

  // Analyses each topic `iterations` times (0 = until stopped: a monitor) and returns every Result.
  // The results stay in memory for the whole call: a monitor should use run() and the callback
  // instead. Blocks until the run ends. Throws std::runtime_error when the run cannot start (the
  // worker program is missing, a file cannot be written, a journal cannot be resumed), and
  // std::invalid_argument for no topics or a topic that is empty, holds a NUL byte, is over 4096 bytes
  // or is not UTF-8. Each topic is trimmed of surrounding ASCII whitespace, as in a topics file.
  Report execute_concurrent(const std::vector<std::string>& topics, int iterations = 1);

  // As execute_concurrent, without keeping results: memory stays flat however long it runs.
  Summary run(const std::vector<std::string>& topics, int iterations = 1);
  // As execute_concurrent and run, over rows: each row's fields fill the prompts' placeholders. The
  // first row's fields are the ones the prompts may use; a row without one of those the prompts use,
  // or with a field named "topic", "sources" or holding a NUL byte or invalid UTF-8, throws
  // std::invalid_argument naming the row. Rows with the same topic and different fields are different
  // tasks.
  Report execute_rows(const std::vector<Row>& rows, int iterations = 1);
  Summary run_rows(const std::vector<Row>& rows, int iterations = 1);

  // As run, over a file of topics in Config::input_format: one per line ('#' comments, blank lines
  // skipped), or JSONL or CSV rows. Invalid lines and rows are skipped and logged. A one-round run
  // streams the file (any size, constant memory); a monitor holds the list and rereads the file when
  // reload_topics() is called. Throws std::invalid_argument for a CSV without a usable header or a
  // prompt placeholder the file has no field for.
  Summary run_file(const std::filesystem::path& topics_file, int iterations = 1);

  // Dry runs of the calls above: the input is read and checked as they read it (the same errors), the
  // prompts rendered, and the requests, tokens and cost estimated; nothing is sent or written. The
  // whole input is estimated: with Config::resume they throw std::invalid_argument (a dry run does
  // not read the journal).
  Estimate estimate(const std::vector<std::string>& topics, int iterations = 1) const;
  Estimate estimate_rows(const std::vector<Row>& rows, int iterations = 1) const;
  Estimate estimate_file(const std::filesystem::path& topics_file, int iterations = 1) const;

  // Callable from any thread, at any time. A stop requested while no run is in progress applies to
  // the next one, which then ends at once.
  //
  // stop(): dispatch nothing new; tasks in flight may finish within Config::drain_grace; every other
  // task read of the round is cancelled (it still gets its Result), the topics not read yet end in one
  // NotRead range (Report::not_read, Summary::not_read). No further round starts.
  void stop();
  // stop_now(): as stop(), but tasks in flight are cancelled at once (their workers killed).
  void stop_now();
  // What the CLI does on TERM/INT: the first call drains like stop(), a later one stops now; the run is
  // reported as interrupted by `signal` and its exit status is 128 + signal.
  void stop_by_signal(int signal);
  // As stop_by_signal(signal) (signal 0: as stop()), or stop_now() when `now`, for the run in progress
  // only: with none in progress nothing is kept for the next run. True when a run took the stop. For a
  // caller that cannot know whether its run has just ended (a binding's Ctrl+C, a cancelled await).
  bool stop_current(bool now, int signal = 0);
  // Before the next round, reread the topics file of run_file (the CLI's SIGHUP). An unreadable or
  // empty file keeps the current list.
  void reload_topics();
  // Writes a status line (done, in flight, queued, restarts) to the log (the CLI's SIGUSR1).
  void log_status();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace concurrent_bigmodel
