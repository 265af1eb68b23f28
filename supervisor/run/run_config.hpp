// RunConfig: everything that decides a run, as the internals need it (built from the public
// concurrent_bigmodel::Config and the call's topics by the library's Executor).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "budget.hpp"
#include "client_config.hpp"
#include "langsmith_settings.hpp"
#include "listen_address.hpp"
#include "pipeline.hpp"
#include "price_table.hpp"
#include "rate_limit.hpp"
#include "retry_policy.hpp"
#include "row_fields.hpp"
#include "row_reader.hpp"
#include "shared_admission.hpp"

namespace cbm {

enum class Mode { multiprocessing, threading, asyncio };
std::string_view to_string(Mode m);

// What a usage cap (1308, 1310: "your limit will reset at ...") does to the run (--on-quota).
enum class QuotaAction {
  wait,  // pause dispatch for every task until the reset time, then go on
  stop,  // abort the run (exit 3); --resume continues it later
};

// Where the analysis step goes (--via; docs/protocol.md, "Batch API").
enum class Via {
  online,  // a chat call per attempt
  batch,   // a line of a Batch API file (the search step runs online first)
};
std::string_view to_string(Via v);

// What an expired or cancelled batch's unanswered lines do (--batch-retry), within --max-retries.
enum class BatchRetry { batch, online, none };
std::string_view to_string(BatchRetry r);

struct BatchSettings {
  std::size_t max_lines = 50000;  // lines a file (--batch-max-lines, hidden: the platform's cap)
  BatchRetry retry = BatchRetry::batch;
  bool cancel_on_stop = false;    // TERM/INT cancels the batches in progress (--cancel-batch-on-stop)
  std::chrono::milliseconds poll_min{1000};   // the first poll of a batch comes after this...
  std::chrono::milliseconds poll_max{30000};  // ...then 1.5 times longer each time, up to this
};

struct RestartIntensity {
  int max_restarts = 20;                  // more than this many worker restarts...
  std::chrono::milliseconds period{10000};  // ...within this window aborts the run (exit 3)
};

struct RunConfig {
  std::vector<TopicRow> topics;  // when no topics file (text input: rows without fields)
  std::string topics_file;       // "" = none
  InputFormat input_format = InputFormat::text;  // the topics file's
  int iterations = 1;       // 0 = until signalled
  int concurrency = 4;
  int workers = 0;  // multiprocessing: processes for the `concurrency` attempts; 0 = one per attempt
  RateCaps rate;  // --rpm / --tpm
  // One more admission condition shared with other processes: a fleet node's --fleet-concurrency
  // (docs/fleet.md). Null: none. Set by whoever builds a fleet node's run; the engine only asks it.
  std::shared_ptr<SharedAdmission> shared_admission;
  Mode mode = Mode::multiprocessing;
  Via via = Via::online;
  BatchSettings batch;
  std::chrono::milliseconds timeout{120000};  // per task attempt
  std::chrono::milliseconds delay{500};       // a worker's pause between tasks, and between rounds
  int batch_size = 0;                         // 0 = automatic
  std::filesystem::path output;               // report; none when empty
  std::filesystem::path log_file;              // none when empty
  bool quiet = false;
  std::chrono::milliseconds progress_interval{10000};  // plain progress lines when stderr is no terminal
  std::optional<ListenAddress> metrics_address;        // serve Prometheus metrics here; none = off
  std::filesystem::path results_jsonl;  // stream terminal records here ("-": stdout); none when empty
  mode_t output_mode = 0600;            // the report's and the results stream's (run_files.hpp)

  // Journal and resume (see journal.hpp for the durability policy).
  std::filesystem::path journal;  // none when empty
  bool resume = false;
  bool force_resume = false;
  bool fresh = false;             // replace a journal whose run did not finish (run_files.hpp)
  int keep_rounds = 0;            // rounds kept in the journal and report; 0 = all

  // Multiprocessing supervision.
  std::chrono::milliseconds kill_grace{2000};     // SIGTERM -> SIGKILL for a timed-out attempt
  std::chrono::milliseconds drain_grace{30000};   // in-flight tasks may finish this long after TERM/INT
  RestartIntensity restart_intensity;
  std::filesystem::path worker_executable;

  ClientConfig client;
  PipelineConfig pipeline;
  RetryPolicy retry;
  QuotaAction on_quota = QuotaAction::wait;
  bool accept_incomplete = false;  // an analysis cut short or empty is a success (--accept-incomplete)
  std::optional<LangSmithSettings> langsmith;  // tracing (from the LANGSMITH_* environment); nullopt: off

  // Cost (docs/cost.md): the prices every estimate uses (never null: bundled or --price-file) and the
  // budget the engine enforces.
  std::shared_ptr<const PriceTable> prices = std::make_shared<const PriceTable>(bundled_price_table());
  Budget budget;
};

// Multiprocessing's layout (docs/architecture.md, "Workers with several attempts"). The attempts one
// worker runs at once: ceil(concurrency / workers), 1 without --workers.
std::size_t attempts_per_worker(const RunConfig& config);
// The workers the slots share: --workers, or one per slot.
std::size_t shared_workers(const RunConfig& config);
// The most worker processes at once: the shared ones, plus a solo worker per slot when they run
// several attempts each (every attempt running again alone at once, at worst).
std::size_t worker_processes_at_most(const RunConfig& config);

}  // namespace cbm
