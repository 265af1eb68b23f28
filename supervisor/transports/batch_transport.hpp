// BatchTransport (--via batch): an attempt's analysis step goes out as one line of a Batch API file
// (docs/protocol.md, "Batch API"); its search step, when the run has one, runs online first, on one
// event loop (AsyncHttp) at most --concurrency at a time. The engine schedules it like any transport
// (retries, records, journal, budgets are the engine's); this transport only decides nothing but how
// a request travels:
//
//   start(slot)  -> the attempt's next request: online (search step) or a line in the open file
//   wait()       -> seals the open file when it is full (--batch-max-lines, 100 MB) or when no attempt
//                   is still in its online step; uploads it (POST /files), creates its batch
//                   (POST /batches), polls each batch with backoff (GET /batches/{id}), and once it
//                   ended, streams its output and error files and hands every line, by custom_id,
//                   to its attempt, which ends as the same answer online would have ended it
//                   (BigModelProtocol::interpret: the same parser and error table).
//
// Crash safety (batch_record.hpp): each file's custom_ids are journalled and synced before its
// upload, its file id right after, its batch id right after the batch exists. --resume hands the
// journal's batch lines here: an attempt whose custom_id (round-id) is in a journalled file joins that
// file's batch instead of making a new line — a batch with an id is polled and downloaded again; a file
// without a recorded id is looked for by its name (GET /files), a batch by its metadata (GET /batches)
// — so a line is never uploaded or paid for twice. The same lookup follows a create whose answer was
// lost (a transport error, a 5xx, an unreadable answer: the batch may exist); only a clear refusal (a
// 4xx) means no batch was made. When a custom_id is in several journalled files, the newest (the last
// the journal names) is the one its attempt waits on.
//
// A call that keeps failing does not stall a line for its 8 days: a refusal (a non-retryable error,
// e.g. a 404 for the output file) or kMaxCallFailures failures in a row end the lines waiting on that
// file, task_fatal (their batch may have run and be paid). An output line longer than
// kBatchMaxOutputLine is skipped, and its attempt ends as an oversized online answer does.
//
// The engine's --timeout does not end a batch line: a batch has its own window (24 h target, cancelled
// by the platform after 7 days); attempt_timeout() is that window plus a day. The online search step
// keeps --timeout. A TERM/INT ends the lines waiting on a batch at once (cancelled, naming the batch),
// leaving the batch running unless --cancel-batch-on-stop; a Batch API call in progress is aborted, and
// no file is uploaded and no batch created after it.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "async_http.hpp"
#include "batch_api.hpp"
#include "batch_record.hpp"
#include "bigmodel_client.hpp"
#include "pipeline.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "transport.hpp"

namespace cbm {

class Logger;
class RunLedger;

class BatchTransport final : public Transport {
 public:
  // How many files may be in flight at once: slots() is this many files' lines.
  static constexpr std::size_t kFilesInFlight = 2;
  // A line's deadline (attempt_timeout): the platform cancels a batch after 7 days.
  static constexpr std::chrono::hours kLineDeadline{8 * 24};
  // Failures in a row of the calls for one file (list, create, retrieve, download) before its lines end.
  static constexpr int kMaxCallFailures = 20;

  BatchTransport(const RunConfig& config, RunControl& control, RunLedger& ledger, Logger& log);
  ~BatchTransport() override;

  std::size_t slots() const override { return slot_count_; }
  std::string_view slot_label() const override { return "b"; }
  Clock::duration attempt_timeout(Clock::duration /*configured*/) const override { return kLineDeadline; }
  void start(std::size_t slot, const Task& task, Clock::time_point deadline) override;
  void cancel(std::size_t slot, CancelCause cause) override;
  void wait(Clock::time_point until, AttemptSink& sink) override;

 private:
  enum class Stage { idle, online_queued, online, in_file };
  struct Slot {
    std::optional<PipelineAttempt> attempt;
    const Task* task = nullptr;  // the engine's, alive until the attempt ends
    Stage stage = Stage::idle;
    std::string custom_id;
    std::optional<StepRequest> pending;  // online_queued: the request to send
    Endpoint endpoint = Endpoint::chat_completions;
    std::size_t http_slot = 0;           // online: its exchange
    std::uint64_t file = 0;              // in_file: the file (files_ key) its line is in
    std::string answered_by;             // the batch that answered its analysis step
  };
  enum class Phase {
    open,       // taking lines
    sealed,     // to upload and create
    found,      // restored by --resume without a batch id: to find (or create) its batch
    polling,    // its batch runs
    dormant,    // restored by --resume, no attempt waits on it yet
  };
  struct File {
    std::string token;
    std::uint64_t seq = 0;
    std::string name;   // cbm-<token>-<seq>.jsonl
    std::string model;
    std::string content;
    std::vector<std::string> custom_ids;
    std::unordered_map<std::string, std::size_t> waiting;  // custom_id -> the slot whose attempt waits
    std::string file_id;
    std::string batch_id;
    Phase phase = Phase::open;
    bool restored = false;
    Clock::time_point next_poll{};
    Clock::duration poll_every{};
    BatchRequestCounts counts;
    std::string status;
    bool create_unanswered = false;  // a create's answer was lost: its batch may exist (looked up first)
    int failures = 0;                // its calls that failed in a row
  };
  // A line's answer, as the online exchange would have ended.
  using LineAnswer = Result<HttpResponse, TransportError>;

  void recover_restored();
  void send_next(std::size_t slot);
  void add_line(std::size_t slot, const StepRequest& request);
  void start_online(std::size_t slot);
  void pump_online();
  void end(std::size_t slot, AttemptOutcome outcome);
  void end_with(std::size_t slot, ErrorKind kind, ErrorClass cls, std::string message);
  void seal_open();
  bool online_busy() const;
  void submit(File& f);
  void find_restored(File& f);
  void create(File& f);
  void poll_due();
  void poll(File& f);
  void collect(File& f, const BatchObject& batch);
  void answer_line(File& f, const std::string& custom_id, const LineAnswer& reply);
  void answer(std::size_t slot, const LineAnswer& reply, const std::string& batch_id);
  void stop_batches();
  bool journal(const BatchRecord& r, File& f);
  void fail_file(File& f, const ApiError& error, const std::string& while_doing);
  bool call_failed(File& f, const ApiError& error, const std::string& doing);
  void forget_restored(const File& f);
  Clock::time_point next_wake(Clock::time_point until) const;

  const RunConfig& config_;
  RunControl& control_;
  RunLedger& ledger_;
  Logger& log_;
  BigModelProtocol protocol_;        // the online steps
  BigModelProtocol batch_protocol_;  // a line's body (never streamed)
  PipelineSteps steps_;
  AsyncHttp http_;
  BatchApi api_;
  const std::string token_;
  std::uint64_t next_seq_ = 1;
  // The slots with an attempt (most of the many slots are idle: a slot's state is made when used).
  const std::size_t slot_count_;
  std::unordered_map<std::size_t, Slot> slots_;
  std::vector<std::size_t> http_owner_;  // http slot -> transport slot
  std::vector<std::size_t> http_free_;
  std::deque<std::size_t> online_queue_;
  std::size_t online_ = 0;  // attempts queued for or in their online step
  std::map<std::uint64_t, File> files_;
  std::uint64_t next_file_ = 1;
  std::optional<std::uint64_t> open_;
  bool recovered_ = false;
  bool stopped_ = false;
  std::unordered_map<std::string, std::uint64_t> restored_;  // custom_id -> its journalled file
  std::unordered_set<std::string> retry_online_;             // --batch-retry online: next analysis online
  // Answers of a collected journalled file's lines whose attempts had not started (--resume).
  std::unordered_map<std::string, std::pair<LineAnswer, std::string>> answered_;  // and its batch id
  std::vector<AsyncHttp::Finished> finished_;
  EndedAttempts ended_;
  EndedAttempts delivering_;
};

}  // namespace cbm
