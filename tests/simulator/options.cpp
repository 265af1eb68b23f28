#include "options.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "batch_store.h"
#include "request_settings.hpp"

namespace simulator {
namespace {

constexpr const char* kDescription =
    R"(bigmodel_simulator: imitates Zhipu BigModel's POST /chat/completions for tests.

Endpoints:
  POST .../chat/completions  any path ending so (e.g. /api/paas/v4/chat/completions)
  POST .../web_search        the Web Search API: search_query (<= 70 characters) and search_engine required
                             (400 "1214" otherwise); search_result[] of count results (default 10)
  GET  /stats                counters as JSON, and the last 256 API requests (path, User-Agent,
                             Accept-Language, body); POST /stats/reset zeroes them (and the *K marker counts)
  POST /runs/batch           LangSmith's run ingestion: {"post":[...],"patch":[...]}, validated (ids,
                             trace_id, dotted_order, parent links, times); 202, 409 for a batch already
                             stored, 400 naming the first invalid run (nothing of that batch is stored)
  GET  /runs                 the stored runs (posts with their patches applied), batches and rejections

The Batch API (docs/protocol.md, "Simulator: the Batch API"), under the same base as chat completions:
  POST .../files             multipart/form-data: purpose=batch and a .jsonl `file` part; 435 above
                             --batch-max-file-bytes; 400 "1214" for a malformed body
  GET  .../files[?purpose=&after=&limit=], GET/DELETE .../files/{id}, GET .../files/{id}/content (Range)
  POST .../batches           input_file_id, endpoint "/v4/chat/completions", auto_delete_input_file,
                             metadata; validating -> in_progress -> finalizing -> completed over
                             --batch-seconds; each line answered as POST .../chat/completions answers it
  GET  .../batches[?after=&limit=], GET .../batches/{id}, POST .../batches/{id}/cancel
  Batch markers, anywhere in an uploaded file: [[fault:batch_fail]] (its line fails validation),
  [[fault:batch_expire]] (expired at mid in_progress, half the lines done), [[fault:batch_drop_download]]
  (the first download of each output file resets the connection midway), [[fault:batch_create_lost]] (the
  simulator's first create of such a file makes the batch, then answers 500), [[fault:batch_lost_output]]
  (the batch's output_file_id names no file: every download of it is a 404)
  POST /batch/hold?phase=P   hold uploads (stored, not answered), batches at a phase, or downloads (after
                             half the body): upload|validating|in_progress|finalizing|download|none
  POST /batch/release        end the hold; held batches resume where they stopped
  GET /stats has "batch": files/bytes/lines uploaded, batches_created, paid_lines, batches_cancelled,
  content_downloads, uploads/downloads_in_progress, batches_by_status, hold

Checks, in order: Authorization (401 code "1000" if the header is missing or not Bearer, "1001" if the
token is empty or differs from --api-key), JSON (400 "1210"), model/messages (400 "1214"), known model
(400 "1211"), a web_search tool's search_engine (400 "1214"), --concurrency-limit (429 "1302"). Requests that pass are delayed by --latency-*, then answered
or faulted.

Fault markers, anywhere in the last user message or the web_search search_query:
  [[fault:NAME]]    fault every such request
  [[fault:NAME*K]]  fault the first K requests with this marker and topic, then answer normally
NAME (also for --fault-rate):)";

constexpr long kMaxLatencyMs = 3'600'000;

// What each fault does. A switch, so a new fault cannot miss its --help line.
std::string_view fault_note(Fault fault) {
  switch (fault) {
    case Fault::k429_1302:
      return "too many requests in flight";
    case Fault::k429_1302_retry_after:
      return "with Retry-After: 1";
    case Fault::k429_1302_retry_after_ms:
      return "with retry-after-ms: 200";
    case Fault::k429_1113:
      return "no balance";
    case Fault::k429_1305:
      return "model overloaded";
    case Fault::k401:
      return "code 1001, token invalid";
    case Fault::k400_1301:
      return "unsafe content";
    case Fault::k400_1261:
      return "prompt too long";
    case Fault::k400_1211:
      return "unknown model";
    case Fault::k500_1234:
      return "network error";
    case Fault::k503:
      return "text/html body";
    case Fault::kHang:
      return "read the request, never answer";
    case Fault::kDrip:
      return "1 body byte per 500 ms for ~60 s, then the rest";
    case Fault::kReset:
      return "head and half the body, then RST";
    case Fault::kInvalidJson:
      return "200 with {\"id\": nope";
    case Fault::kTruncatedJson:
      return "200, JSON cut in half";
    case Fault::kOversize:
      return "200, 9 MiB body";
    case Fault::kSensitive:
      return "finish_reason sensitive, empty content";
    case Fault::kNetworkError:
      return "finish_reason network_error";
    case Fault::kSseError:
      return "stream: one chunk, then an error frame; else as 500_1234";
    case Fault::kEmptyChoices:
      return "\"choices\":[]";
    case Fault::kWrongTypes:
      return "content is a number";
    case Fault::kKillClient:
      return "SIGKILL the local process owning the peer socket; 500 if none";
    case Fault::kLength:
      return "finish_reason length, half the content";
    case Fault::kContextExceeded:
      return "finish_reason model_context_window_exceeded, half the content";
    case Fault::kEmptyContent:
      return "content only whitespace, finish_reason stop";
    case Fault::kUnrecognizedArgument:
      return "400 as api.openai.com: Unrecognized request argument supplied: thinking";
    case Fault::kCode:
      return "any code of the platform's table (1000..1313, 500): its HTTP status and message";
    case Fault::kCodeInt:
      return "the same, the code as a JSON integer";
    case Fault::kCodeIn200:
      return "HTTP 200: a stream's first event `event: error`, else an {\"error\"} body";
    case Fault::kQuotaReset:
      return "429 code 1308, \"Your limit will reset at\" now + N s (UTC+8, to the second)";
    case Fault::kQuota1310Reset:
      return "the same with code 1310";
    case Fault::kHugeError:
      return "400 code 1214 with a 5 MB message";
    case Fault::kBadUtf8:
      return "content with bytes that are not UTF-8";
    case Fault::kEchoKey:
      return "content quoting the request's bearer token";
    case Fault::kManyValues:
      return "a good answer with a 7 MB array of 3.5 million small values beside it";
  }
  return "";
}

std::string fault_guide() {
  std::string guide;
  for (std::size_t i = 0; i < kFaultCount; ++i) {
    const auto fault = static_cast<Fault>(i);
    guide.append("\n  ").append(fault_name(fault));
    guide.append(std::max<std::size_t>(1, 24 - fault_name(fault).size()), ' ').append(fault_note(fault));
  }
  return guide + "\n";
}

}  // namespace

void add_options(CLI::App& app, Options& options) {
  app.description(kDescription + fault_guide());

  app.add_option("--host", options.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "Port to listen on; 0 picks an ephemeral port")
      ->capture_default_str();
  app.add_option("--port-file", options.port_file,
                 "Once listening, write the port number to this file (atomically: temp file + rename)");
  app.add_option("--threads", options.threads, "io threads")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));

  app.add_option_function<long>(
         "--latency-ms", [&options](long ms) { options.latency.base = std::chrono::milliseconds(ms); },
         "Added latency per admitted chat request: the fixed value, uniform minimum or exponential mean")
      ->default_str("0")
      ->check(CLI::Range(0L, kMaxLatencyMs));
  app.add_option_function<long>(
         "--latency-max-ms", [&options](long ms) { options.latency.max = std::chrono::milliseconds(ms); },
         "Upper bound for --latency-dist uniform")
      ->check(CLI::Range(0L, kMaxLatencyMs));
  app.add_option_function<std::string>(
         "--latency-dist",
         [&options](const std::string& name) {
           options.latency.distribution = name == "uniform"       ? LatencyDistribution::kUniform
                                          : name == "exponential" ? LatencyDistribution::kExponential
                                                                  : LatencyDistribution::kFixed;
         },
         "Latency distribution")
      ->check(CLI::IsMember({"fixed", "uniform", "exponential"}))
      ->default_str("fixed");

  app.add_option("--api-key", options.api_key, "The only accepted bearer token (default: any non-empty one)");
  app.add_option("--concurrency-limit", options.concurrency_limit,
                 "Chat requests in flight per API key before 429 code 1302; 0 = unlimited")
      ->capture_default_str();
  app.add_option_function<std::string>(
      "--fault-rate",
      [&options](const std::string& spec) {
        try {
          options.fault_rates = FaultRates::parse(spec);
        } catch (const std::invalid_argument& e) {
          throw CLI::ValidationError("--fault-rate", e.what());
        }
      },
      "NAME=P[,NAME=P...]: inject fault NAME into a chat request with probability P");
  app.add_option("--content-bytes", options.content_bytes, "Approximate size of the generated answer")
      ->capture_default_str();
  const auto documented = cbm::documented_models();
  options.models.assign(documented.begin(), documented.end());
  app.add_option("--models", options.models, "Known models (comma list); others get 400 code 1211")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--max-body", options.max_body, "Request body cap in bytes; larger gets 413 code 1210")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--verbose", options.verbose, "Log every request to stderr");
  app.add_option("--langsmith-workspace", options.langsmith_workspace,
                 "Require X-Tenant-Id: ID on /runs/batch (403 otherwise), as for an org-scoped key");
  app.add_flag("--strict-openai", options.strict_openai,
               "Answer as api.openai.com: a chat request with a field OpenAI does not know gets 400\n"
               "{\"error\":{\"message\":\"Unrecognized request argument supplied: <field>\",...}}, a tool "
               "that is not\n"
               "a function 400 invalid_value; POST /web_search is not found");
  app.add_option("--langsmith-api-key", options.langsmith_api_key,
                 "The only x-api-key /runs/batch accepts (401 otherwise); default: any, or none");
  app.add_option_function<std::string>(
         "--runs-fault",
         [&options](const std::string& name) {
           options.runs_fault = name == "hang" ? RunsFault::kHang : name == "500" ? RunsFault::k500 : RunsFault::kNone;
         },
         "How /runs/batch misbehaves: hang (read the request, never answer) | 500 | none")
      ->check(CLI::IsMember({"none", "hang", "500"}))
      ->default_str("none");

  app.add_option("--batch-seconds", options.batch_seconds,
                 "Batch API: seconds from validating to completed (fractions allowed; 0: at once)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--batch-max-file-bytes", options.batch_max_file_bytes,
                 "Batch API: the largest uploaded file; larger gets HTTP 435")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 32));
  app.add_option("--batch-max-lines", options.batch_max_lines,
                 "Batch API: the most requests a file may hold; more fails validation (too_many_lines)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}));
  app.add_option("--batch-hold", options.batch_hold,
                 "Batch API: hold this phase from the start (see POST /batch/hold); default none")
      ->check(CLI::IsMember(BatchStore::hold_phases()));

  app.final_callback([&options] {
    if (options.latency.distribution == LatencyDistribution::kUniform &&
        options.latency.max < options.latency.base) {
      throw CLI::ValidationError("--latency-max-ms",
                                 "must be at least --latency-ms for --latency-dist uniform");
    }
  });
}

}  // namespace simulator
