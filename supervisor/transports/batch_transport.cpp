#include "batch_transport.hpp"

#include <algorithm>
#include <random>

#include "logger.hpp"
#include "run_ledger.hpp"

namespace cbm {
namespace {

using std::chrono::milliseconds;

std::string random_token() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  std::string out(12, '0');
  for (auto& c : out) c = kHex[gen() % 16];
  return out;
}

std::string file_name(const std::string& token, std::uint64_t seq) {
  std::string name = "cbm-";
  name += token;
  name += '-';
  name += std::to_string(seq);
  name += ".jsonl";
  return name;
}

bool is_analysis(const StepRequest& r) {
  const auto* chat = std::get_if<ChatRequest>(&r);
  return chat != nullptr && !chat->web_search;
}

ClientConfig unstreamed(ClientConfig c) {
  c.stream = false;  // a batch line's answer comes whole
  return c;
}

std::string progress_text(const std::string& batch_id, const std::string& status, const BatchRequestCounts& c) {
  std::string line = "batch ";
  line += batch_id;
  line += ": ";
  line += status;
  line += ", ";
  line += std::to_string(c.completed + c.failed);
  line += '/';
  line += std::to_string(c.total);
  line += " lines done (";
  line += std::to_string(c.failed);
  line += " failed)";
  return line;
}

}  // namespace

BatchTransport::BatchTransport(const RunConfig& config, RunControl& control, RunLedger& ledger, Logger& log)
    : config_(config),
      control_(control),
      ledger_(ledger),
      log_(log),
      protocol_(config.client),
      batch_protocol_(unstreamed(config.client)),
      steps_(config.pipeline),
      http_(config.client.http, static_cast<std::size_t>(std::max(1, config.concurrency)), control.wake_fd()),
      // A stop aborts the call in progress (the journal's records make any of them safe to cut short),
      // except the cancels stop_batches() sends for it, which only a second TERM/INT cuts.
      api_(config.client, std::max(config.timeout, milliseconds(std::chrono::minutes(10))),
           [this] { return control_.level() == StopLevel::now || (control_.stopping() && !stopped_); }),
      token_(random_token()),
      slot_count_(std::max<std::size_t>(1, config.batch.max_lines) * kFilesInFlight) {
  const std::size_t online = static_cast<std::size_t>(std::max(1, config.concurrency));
  http_owner_.resize(online);
  for (std::size_t i = online; i-- > 0;) http_free_.push_back(i);
}

BatchTransport::~BatchTransport() = default;

// --resume: the journal's batch lines become files that wait (dormant) until an attempt of one of
// their lines starts. A file abandoned, or whose lines all have records, never wakes. A custom_id in
// more than one file waits on the newest (the files come oldest first).
void BatchTransport::recover_restored() {
  if (recovered_) return;
  recovered_ = true;
  for (auto& r : fold_batch_records(ledger_.take_restored_batch_lines())) {
    if (r.abandoned || r.custom_ids.empty()) continue;
    File f;
    f.token = r.token;
    f.seq = r.seq;
    f.name = r.file.empty() ? file_name(r.token, r.seq) : r.file;
    f.model = r.model;
    f.custom_ids = std::move(r.custom_ids);
    f.file_id = r.file_id;
    f.batch_id = r.batch_id;
    f.phase = Phase::dormant;
    f.restored = true;
    const std::uint64_t id = next_file_++;
    for (const auto& c : f.custom_ids) restored_[c] = id;
    files_.emplace(id, std::move(f));
  }
  if (!files_.empty()) {
    log_.info("--via batch: " + std::to_string(files_.size()) +
              " batch file(s) from the journal; their lines are collected, not sent again");
  }
}

void BatchTransport::start(std::size_t slot, const Task& task, Clock::time_point /*deadline*/) {
  recover_restored();
  Slot& s = slots_[slot];
  s.attempt.emplace(steps_.begin(task));
  s.task = &task;
  s.custom_id = batch_custom_id(task.round, task.id);
  s.stage = Stage::idle;
  if (auto answered = answered_.extract(s.custom_id)) {
    // Its line's answer came with a batch --resume collected before this attempt started.
    s.attempt->continue_at_analysis();
    (void)s.attempt->next_request();
    answer(slot, answered.mapped().first, answered.mapped().second);
    return;
  }
  if (const auto it = restored_.find(s.custom_id); it != restored_.end() && files_.count(it->second) != 0) {
    // Its line went out before (--resume): it waits for that file's batch.
    File& f = files_.at(it->second);
    s.attempt->continue_at_analysis();
    (void)s.attempt->next_request();  // the analysis step's record; the request itself was sent
    s.stage = Stage::in_file;
    s.file = it->second;
    f.waiting[s.custom_id] = slot;
    if (f.phase == Phase::dormant) {
      f.phase = f.batch_id.empty() ? Phase::found : Phase::polling;
      f.poll_every = config_.batch.poll_min;
      f.next_poll = Clock::now();
    }
    return;
  }
  send_next(slot);
}

void BatchTransport::send_next(std::size_t slot) {
  Slot& s = slots_[slot];
  auto request = s.attempt->next_request();
  if (!request) {
    end(slot, s.attempt->take_outcome());
    return;
  }
  const bool online = !is_analysis(*request) || retry_online_.count(s.custom_id) > 0;
  if (online) {
    s.pending = std::move(*request);
    s.stage = Stage::online_queued;
    ++online_;
    online_queue_.push_back(slot);
    pump_online();
    return;
  }
  if (stopped_) {
    end_with(slot, ErrorKind::transport, ErrorClass::retryable, "the run stopped before its batch file was uploaded");
    return;
  }
  add_line(slot, *request);
}

void BatchTransport::add_line(std::size_t slot, const StepRequest& request) {
  Slot& s = slots_[slot];
  const auto& chat = std::get<ChatRequest>(request);
  std::string line = batch_request_line(s.custom_id, batch_protocol_.prepare(request).body);
  if (open_) {
    const File& f = files_.at(*open_);
    if (f.model != chat.model || f.custom_ids.size() >= config_.batch.max_lines ||
        f.content.size() + line.size() > kBatchMaxBytes) {
      seal_open();
    }
  }
  if (!open_) {
    File f;
    f.token = token_;
    f.seq = next_seq_++;
    f.name = file_name(f.token, f.seq);
    f.model = chat.model;
    open_ = next_file_++;
    files_.emplace(*open_, std::move(f));
  }
  File& f = files_.at(*open_);
  f.content += line;
  f.custom_ids.push_back(s.custom_id);
  f.waiting[s.custom_id] = slot;
  s.stage = Stage::in_file;
  s.file = *open_;
  if (f.custom_ids.size() >= config_.batch.max_lines) seal_open();
}

void BatchTransport::seal_open() {
  if (!open_) return;
  files_.at(*open_).phase = Phase::sealed;
  open_.reset();
}

void BatchTransport::pump_online() {
  while (!http_free_.empty() && !online_queue_.empty()) {
    const std::size_t slot = online_queue_.front();
    online_queue_.pop_front();
    const auto it = slots_.find(slot);
    if (it == slots_.end() || it->second.stage != Stage::online_queued) continue;  // cancelled meanwhile
    start_online(slot);
  }
}

void BatchTransport::start_online(std::size_t slot) {
  Slot& s = slots_[slot];
  const std::size_t hs = http_free_.back();
  http_free_.pop_back();
  http_owner_[hs] = slot;
  s.http_slot = hs;
  s.stage = Stage::online;
  s.endpoint = endpoint_of(*s.pending);
  http_.start(hs, protocol_.prepare(*s.pending), config_.timeout);
  s.pending.reset();
}

void BatchTransport::end(std::size_t slot, AttemptOutcome outcome) {
  const Slot& s = slots_[slot];
  // The step a batch answered names it (its price is the batch's: Spend::batch_models).
  if (!s.answered_by.empty() && !outcome.steps.empty() && outcome.steps.back().name == "analysis") {
    outcome.steps.back().batch_id = s.answered_by;
  }
  ended_.add(slot, std::move(outcome));
  slots_.erase(slot);
}

void BatchTransport::end_with(std::size_t slot, ErrorKind kind, ErrorClass cls, std::string message) {
  Slot& s = slots_[slot];
  AttemptOutcome outcome = s.attempt->take_outcome();
  outcome.error.emplace();
  outcome.error->kind = kind;
  outcome.error->error_class = cls;
  outcome.error->message = std::move(message);
  end(slot, std::move(outcome));
}

void BatchTransport::cancel(std::size_t slot, CancelCause /*cause*/) {
  const auto found = slots_.find(slot);
  if (found == slots_.end() || !found->second.attempt) return;
  Slot& s = found->second;
  switch (s.stage) {
    case Stage::online:
      http_.cancel(s.http_slot);
      http_free_.push_back(s.http_slot);
      --online_;
      break;
    case Stage::online_queued:
      --online_;  // pump_online skips it
      break;
    case Stage::in_file:
      if (const auto it = files_.find(s.file); it != files_.end()) it->second.waiting.erase(s.custom_id);
      break;
    case Stage::idle:
      break;
  }
  end_with(slot, ErrorKind::cancelled, ErrorClass::task_fatal, "");  // the engine names it
  pump_online();
}

bool BatchTransport::online_busy() const { return online_ > 0; }

bool BatchTransport::journal(const BatchRecord& r, File& f) {
  if (auto failure = ledger_.journal_batch_line(encode_batch_record(r))) {
    ApiError e;
    e.kind = ErrorKind::transport;
    e.error_class = ErrorClass::run_fatal;
    e.message = "the journal cannot record batch file " + f.name + ": " + *failure;
    fail_file(f, e, "journalling");
    return false;
  }
  return true;
}

// Every line of `f` that an attempt waits on ends with `error` (the engine's retry policy decides).
void BatchTransport::fail_file(File& f, const ApiError& error, const std::string& while_doing) {
  log_.warn("batch file " + f.name + ": " + while_doing + " failed: " + error.describe());
  for (const auto& [custom_id, slot] : f.waiting) {
    AttemptOutcome outcome = slots_[slot].attempt->take_outcome();
    outcome.error = error;
    if (!outcome.steps.empty()) outcome.error->message.insert(0, outcome.steps.back().error_prefix());
    end(slot, std::move(outcome));
  }
  f.waiting.clear();
}

// Intent, upload, file id, create, batch id: each journalled before the next call.
void BatchTransport::submit(File& f) {
  BatchRecord intent;
  intent.token = f.token;
  intent.seq = f.seq;
  intent.state = BatchState::file_uploading;
  intent.file = f.name;
  intent.model = f.model;
  intent.custom_ids = f.custom_ids;
  if (!journal(intent, f)) return;
  log_.info("batch file " + f.name + ": uploading " + std::to_string(f.custom_ids.size()) + " lines (" +
            std::to_string(f.content.size()) + " bytes)");
  auto uploaded = api_.upload(f.name, f.content);
  if (!uploaded) {
    // Whatever the server kept of it is never used: a file costs nothing, a batch is made of it or none.
    if (!journal(BatchRecord{f.token, f.seq, BatchState::abandoned, "", "", {}, "", ""}, f)) return;
    // Aborted by a stop: stop_batches() ends its lines as stopped, not failed.
    if (!control_.stopping()) fail_file(f, uploaded.error(), "upload");
    return;
  }
  f.content.clear();
  f.content.shrink_to_fit();
  f.file_id = uploaded->id;
  if (!journal(BatchRecord{f.token, f.seq, BatchState::uploaded, "", "", {}, f.file_id, ""}, f)) return;
  f.phase = Phase::found;
  f.poll_every = config_.batch.poll_min;
  if (control_.stopping()) return;  // no batch is created after a stop (--resume creates it)
  find_restored(f);
}

// A file with an id and no recorded batch: its batch is found by the metadata this program sets
// (a create that was sent before a crash), else created now; the id is journalled either way.
void BatchTransport::find_restored(File& f) {
  if (f.file_id.empty()) {
    // The upload's intent without its id: the file is looked for by name (a file costs nothing; the
    // lines of one not found go into a new file).
    std::string after;
    bool listed = false;
    for (int page = 0; page < 100 && f.file_id.empty(); ++page) {
      auto files = api_.list_files(after);
      if (!files) {
        call_failed(f, files.error(), "listing files");
        return;
      }
      if (!files.value()) break;  // no list endpoint: the lines go into a new file
      listed = true;
      for (const auto& file : files.value()->data) {
        if (file.filename == f.name) f.file_id = file.id;
      }
      if (!files.value()->has_more || files.value()->last_id.empty()) break;
      after = files.value()->last_id;
    }
    if (f.file_id.empty()) {
      log_.info("batch file " + f.name + (listed ? " was not uploaded" : ": the server lists no files") +
                ": its lines go into a new file");
      journal(BatchRecord{f.token, f.seq, BatchState::abandoned, "", "", {}, "", ""}, f);
      // The attempts start over (their search step too: nothing of it was kept), with new lines; so do
      // the lines of this file whose attempts have not started yet.
      forget_restored(f);
      std::vector<std::size_t> waiting;
      for (const auto& [custom_id, slot] : f.waiting) waiting.push_back(slot);
      f.waiting.clear();
      f.restored = false;
      for (const std::size_t slot : waiting) {
        Slot& s = slots_[slot];
        s.attempt.emplace(steps_.begin(*s.task));
        s.stage = Stage::idle;
        send_next(slot);
      }
      f.waiting.clear();
      return;
    }
    if (!journal(BatchRecord{f.token, f.seq, BatchState::uploaded, "", "", {}, f.file_id, ""}, f)) return;
  }
  if (f.restored || f.create_unanswered) {
    std::string after;
    for (int page = 0; page < 100 && f.batch_id.empty(); ++page) {
      auto list = api_.list_batches(after);
      if (!list) {
        call_failed(f, list.error(), "listing batches");
        return;
      }
      for (const auto& b : list->data) {
        const auto token = b.metadata.find("cbm_token");
        const auto seq = b.metadata.find("cbm_seq");
        if (token != b.metadata.end() && token->second == f.token && seq != b.metadata.end() &&
            seq->second == std::to_string(f.seq)) {
          f.batch_id = b.id;
        }
      }
      if (!list->has_more || list->last_id.empty()) break;
      after = list->last_id;
    }
  }
  if (f.batch_id.empty()) {
    create(f);
    return;
  }
  log_.info("batch file " + f.name + ": found its batch " + f.batch_id);
  if (!journal(BatchRecord{f.token, f.seq, BatchState::created, "", "", {}, "", f.batch_id}, f)) return;
  f.failures = 0;
  f.phase = Phase::polling;
  f.poll_every = config_.batch.poll_min;
  f.next_poll = Clock::now() + f.poll_every;
}

// POST /batches for `f`. Only a clear refusal (a 4xx) means no batch was made: then its lines fail as
// the error says and the file is abandoned. Any other failure may hide a batch that exists (the answer
// was lost): the file stays, and its batch is looked up by its metadata before another create.
void BatchTransport::create(File& f) {
  auto created = api_.create(f.file_id, {{"cbm_token", f.token}, {"cbm_seq", std::to_string(f.seq)}});
  if (!created) {
    const ApiError& e = created.error();
    if (e.http_status >= 400 && e.http_status < 500) {
      fail_file(f, e, "creating its batch");
      forget_restored(f);
      f.restored = false;
      journal(BatchRecord{f.token, f.seq, BatchState::abandoned, "", "", {}, "", ""}, f);
      return;
    }
    f.create_unanswered = true;
    call_failed(f, e, "creating its batch (it may exist: looked for by its metadata before another create)");
    return;
  }
  f.batch_id = created->id;
  log_.info("batch file " + f.name + ": batch " + f.batch_id + " created (" + created->status + ")");
  if (!journal(BatchRecord{f.token, f.seq, BatchState::created, "", "", {}, "", f.batch_id}, f)) return;
  f.failures = 0;
  f.phase = Phase::polling;
  f.poll_every = config_.batch.poll_min;
  f.next_poll = Clock::now() + f.poll_every;
}

// A Batch API call for `f` failed. A refusal (an error that is not retryable) or kMaxCallFailures
// failures in a row end the lines waiting on it for good (task_fatal, unless run_fatal): its batch may
// exist and be paid, and a new line would be paid again. Anything else is tried again later, backing
// off as the polls do. True when the lines ended.
bool BatchTransport::call_failed(File& f, const ApiError& error, const std::string& doing) {
  ++f.failures;
  f.poll_every =
      std::clamp<Clock::duration>(f.poll_every * 3 / 2, config_.batch.poll_min, config_.batch.poll_max);
  f.next_poll = Clock::now() + f.poll_every;
  const std::string what = f.batch_id.empty() ? "batch file " + f.name : "batch " + f.batch_id;
  const bool transient =
      error.error_class == ErrorClass::retryable || error.error_class == ErrorClass::wait_until;
  if (transient && f.failures < kMaxCallFailures) {
    log_.warn(what + ": " + doing + " failed (" + error.describe() + "); retrying later");
    return false;
  }
  ApiError e = error;
  if (e.error_class != ErrorClass::run_fatal) e.error_class = ErrorClass::task_fatal;
  e.message = what + ": " + doing + " failed" +
              (transient ? " " + std::to_string(f.failures) + " times in a row" : std::string()) + " (" +
              error.message + "); its lines are not sent again (their batch may have run, and be paid)";
  fail_file(f, e, doing);
  forget_restored(f);
  f.restored = false;
  return true;
}

// The journalled lines of `f` whose attempts have not started no longer wait for it (they go out anew).
void BatchTransport::forget_restored(const File& f) {
  for (const auto& c : f.custom_ids) {
    const auto it = restored_.find(c);
    if (it != restored_.end() && files_.count(it->second) != 0 && &files_.at(it->second) == &f)
      restored_.erase(it);
  }
}

void BatchTransport::poll_due() {
  const auto now = Clock::now();
  for (auto it = files_.begin(); it != files_.end();) {
    if (control_.stopping()) return;  // nothing new is asked for after a stop (stop_batches ends the lines)
    File& f = it->second;
    if (f.phase == Phase::found && !f.waiting.empty() && now >= f.next_poll) find_restored(f);
    if (f.phase == Phase::polling && !f.waiting.empty() && now >= f.next_poll) poll(f);
    // A file is done once no attempt waits on it (its restored lines may still come: it stays).
    const bool done = f.waiting.empty() && !f.restored && f.phase != Phase::open;
    it = done ? files_.erase(it) : std::next(it);
  }
}

void BatchTransport::poll(File& f) {
  auto batch = api_.retrieve(f.batch_id);
  if (!batch) {
    call_failed(f, batch.error(), "retrieving it");
    return;
  }
  f.poll_every = std::min<Clock::duration>(f.poll_every * 3 / 2, config_.batch.poll_max);
  f.next_poll = Clock::now() + f.poll_every;
  if (batch->status != f.status || batch->request_counts.completed != f.counts.completed ||
      batch->request_counts.failed != f.counts.failed) {
    f.status = batch->status;
    f.counts = batch->request_counts;
    log_.info(progress_text(f.batch_id, f.status, f.counts));
  }
  if (!batch->ended()) {
    f.failures = 0;
    return;
  }
  collect(f, batch.value());
}

// The batch ended: every line of its output and error files goes to its attempt; a line the batch
// did not answer ends as its status says.
void BatchTransport::collect(File& f, const BatchObject& batch) {
  if (batch.status == "failed") {
    ApiError e;
    e.kind = ErrorKind::api;
    e.error_class = ErrorClass::task_fatal;  // the platform refused the file: it would refuse it again
    e.message = "batch " + f.batch_id + " failed validation";
    for (const auto& le : batch.errors) {
      e.message += "; ";
      if (le.line > 0) e.message += "line " + std::to_string(le.line) + ": ";
      if (!le.code.empty()) e.message += "code " + le.code + ": ";
      e.message += le.message;
      if (e.message.size() > 1000) break;
    }
    if (!batch.errors.empty()) e.code = batch.errors.front().code;
    fail_file(f, e, "validation");
    forget_restored(f);
    f.restored = false;
    return;
  }
  std::size_t bad = 0;  // lines of its files that name no answer
  for (const std::string* file_id : {&batch.output_file_id, &batch.error_file_id}) {
    if (file_id->empty()) continue;
    const auto unusable = [&](const std::string& why) {
      if (++bad <= 3)
        log_.warn("batch " + f.batch_id + ": a line of file " + *file_id + " is unusable: " + why);
    };
    auto read = api_.download(
        *file_id,
        [&](std::string_view text) {
          auto line = parse_batch_output_line(text);
          if (!line) return unusable(line.error());
          HttpResponse response;
          response.status = line->status_code;
          response.body = std::move(line->body);
          response.content_type = "application/json";
          answer_line(f, line->custom_id, LineAnswer(std::move(response)));
        },
        [&](std::string_view head, std::string_view tail) {
          // The answer online would have refused as too large: its attempt ends as that one would.
          const std::string too_long =
              "an answer longer than " + std::to_string(kBatchMaxOutputLine) + " bytes";
          const auto custom_id = custom_id_at_edges(head, tail);
          if (!custom_id) return unusable(too_long + ", without a custom_id at its edges");
          log_.warn("batch " + f.batch_id + ": the line of " + *custom_id + " is " + too_long + ": not read");
          answer_line(f, *custom_id,
                      LineAnswer(Err{TransportError{TransportError::Kind::too_large, too_long}}));
        });
    if (!read) {
      // Downloaded again at the next poll (files are kept 30 days); lines already answered are done.
      call_failed(f, read.error(), "downloading file " + *file_id);
      return;
    }
  }
  f.failures = 0;
  const bool expired = batch.status == "expired" || batch.status == "cancelled";
  ApiError e;
  e.kind = ErrorKind::transport;
  if (expired) {
    e.error_class = config_.batch.retry == BatchRetry::none ? ErrorClass::task_fatal : ErrorClass::retryable;
    e.message = "batch " + f.batch_id + " was " + batch.status + " before this line was answered (--batch-retry " +
                std::string(to_string(config_.batch.retry)) + ")";
    if (config_.batch.retry == BatchRetry::online) {
      for (const auto& [custom_id, slot] : f.waiting) retry_online_.insert(custom_id);
    }
  } else {
    e.kind = ErrorKind::protocol;
    e.error_class = ErrorClass::retryable;
    e.message = "batch " + f.batch_id + " " + batch.status + " without an answer for this line";
    if (bad > 0) e.message += " (" + std::to_string(bad) + " lines of its files were unusable)";
  }
  if (!f.waiting.empty()) fail_file(f, e, "collecting");
  // The lines of a collected file that no attempt waits on: answered (kept in answered_) or not
  // (a new line when their attempt starts).
  forget_restored(f);
  f.restored = false;
}

void BatchTransport::answer_line(File& f, const std::string& custom_id, const LineAnswer& reply) {
  const auto it = f.waiting.find(custom_id);
  if (it == f.waiting.end()) {
    // A file --resume collects: a line whose attempt has not started yet keeps its answer for it
    // (a line whose task has a record never starts again).
    const auto restored = restored_.find(custom_id);
    if (f.restored && restored != restored_.end() && files_.count(restored->second) != 0 &&
        &files_.at(restored->second) == &f) {
      answered_.insert_or_assign(custom_id, std::make_pair(reply, f.batch_id));
    }
    return;
  }
  const std::size_t slot = it->second;
  f.waiting.erase(it);
  answer(slot, reply, f.batch_id);
}

void BatchTransport::answer(std::size_t slot, const LineAnswer& reply, const std::string& batch_id) {
  Slot& s = slots_[slot];
  restored_.erase(s.custom_id);
  retry_online_.erase(s.custom_id);
  s.answered_by = batch_id;
  s.attempt->on_answer(protocol_.interpret(Endpoint::chat_completions, reply));
  s.stage = Stage::idle;
  send_next(slot);
}

// The run stops (TERM/INT): what waits on a batch ends now, cancelled by the engine, the record
// naming the batch; the batches go on (the next --resume collects them) unless --cancel-batch-on-stop.
void BatchTransport::stop_batches() {
  stopped_ = true;
  seal_open();
  for (auto& [key, f] : files_) {
    if (f.waiting.empty()) continue;
    std::string message;
    if (f.phase == Phase::polling || (f.phase == Phase::found && !f.batch_id.empty())) {
      if (config_.batch.cancel_on_stop) {
        auto cancelled = api_.cancel(f.batch_id);
        message = "the run stopped while batch " + f.batch_id + " was in progress; it was " +
                  (cancelled ? "cancelled (--cancel-batch-on-stop)"
                             : "to be cancelled, but the cancel failed: " + cancelled.error().describe());
      } else {
        message = "the run stopped while batch " + f.batch_id +
                  " was in progress; it goes on (paid for): --resume collects its answers";
      }
      log_.warn(message);
    } else if (!f.file_id.empty()) {
      message = "the run stopped before the batch of file " + f.name + " was " +
                (f.create_unanswered ? "known (a create's answer was lost)" : "created") +
                ": --resume finds or creates it";
    } else {
      message = "the run stopped before batch file " + f.name + " was uploaded";
    }
    ApiError e;
    e.kind = ErrorKind::transport;
    e.error_class = ErrorClass::retryable;
    e.message = message;
    for (const auto& [custom_id, slot] : f.waiting) {
      AttemptOutcome outcome = slots_[slot].attempt->take_outcome();
      outcome.error = e;
      end(slot, std::move(outcome));
    }
    f.waiting.clear();
  }
}

// Never later than a file ready to go: lines can land in a new file after this turn's uploads (a
// file --resume finds missing sends its lines again from poll_due()); the next turn seals and uploads.
Clock::time_point BatchTransport::next_wake(Clock::time_point until) const {
  if (!stopped_ && !control_.stopping()) {
    if (open_ && !online_busy()) return Clock::now();
    for (const auto& [key, f] : files_) {
      if (f.phase == Phase::sealed && !f.waiting.empty()) return Clock::now();
    }
  }
  for (const auto& [key, f] : files_) {
    if ((f.phase == Phase::polling || f.phase == Phase::found) && !f.waiting.empty()) {
      until = std::min(until, f.next_poll);
    }
  }
  return until;
}

void BatchTransport::wait(Clock::time_point until, AttemptSink& sink) {
  recover_restored();
  if (control_.stopping() && !stopped_) stop_batches();
  if (!stopped_) {
    // Sealed when full, or when no attempt will add a line soon (none is in its online step).
    if (open_ && !online_busy()) seal_open();
    for (auto& [key, f] : files_) {
      if (control_.stopping()) break;  // nothing is uploaded after a stop (the next wait ends the lines)
      if (f.phase == Phase::sealed) {
        if (f.waiting.empty()) {
          f.phase = Phase::found;  // every line was cancelled: nothing to send
          continue;
        }
        submit(f);
      }
    }
    poll_due();
  }
  if (ended_.empty()) {
    const auto wake = next_wake(until);
    const auto wait = std::max(milliseconds::zero(), std::chrono::ceil<milliseconds>(wake - Clock::now()));
    if (http_.wait(wait)) control_.drain_wakeups();
    http_.take_finished(finished_);
    for (auto& done : finished_) {
      const std::size_t slot = http_owner_[done.slot];
      http_free_.push_back(done.slot);
      --online_;
      Slot& s = slots_[slot];
      s.stage = Stage::idle;
      s.attempt->on_answer(protocol_.interpret(s.endpoint, done.result));
      send_next(slot);
    }
    pump_online();
  }
  delivering_.swap(ended_);
  delivering_.deliver(sink);
}

}  // namespace cbm
