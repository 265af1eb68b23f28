#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api_error.h"
#include "faults.h"
#include "options.h"

namespace simulator {

// BigModel's Batch API (docs/protocol.md, "Simulator: the Batch API"): uploaded JSONL files and the
// batches made of them, in memory, keyed by generated ids. A batch's progress is a function of the time
// since its creation (--batch-seconds): it is brought up to date whenever it is looked at, so no timer
// runs. Every line is answered at creation by the same code as the online endpoint (answer.h).
// Thread-safe: one mutex over the store; the gauges are atomics.
class BatchStore {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // An HTTP answer, for the session to send.
  struct Reply {
    unsigned status = 200;
    std::string body;
    std::string_view content_type = "application/json; charset=UTF-8";
    std::string content_range;  // a 206's Content-Range
    bool cut_midway = false;    // batch_drop_download: send half the body, then reset the connection
  };

  // Counts an upload or download for as long as it is held (the *_in_progress gauges).
  class Activity {
   public:
    Activity(Activity&& other) noexcept : gauge_(std::exchange(other.gauge_, nullptr)) {}
    Activity& operator=(Activity&&) = delete;
    ~Activity() {
      if (gauge_ != nullptr) gauge_->fetch_sub(1, std::memory_order_relaxed);
    }

   private:
    friend class BatchStore;
    explicit Activity(std::atomic<std::int64_t>* gauge) : gauge_(gauge) {
      gauge_->fetch_add(1, std::memory_order_relaxed);
    }
    std::atomic<std::int64_t>* gauge_;
  };

  BatchStore(const Options& options, MarkerLedger& ledger, Clock clock = &std::chrono::system_clock::now);
  ~BatchStore();
  BatchStore(const BatchStore&) = delete;
  BatchStore& operator=(const BatchStore&) = delete;

  // The largest request body an upload may have: the file cap plus room for the multipart framing.
  std::size_t upload_body_limit() const;
  // The answer to an upload whose body exceeds upload_body_limit(): HTTP 435.
  static ApiError file_too_large(std::size_t cap);

  // POST /files (multipart/form-data: purpose=batch, a .jsonl `file` part).
  Reply upload(std::string_view content_type, std::string_view body);
  // GET /files[?purpose=&after=&limit=] (assumed OpenAI-shaped), GET /files/{id}, DELETE /files/{id}.
  Reply list_files(std::string_view query);
  Reply retrieve_file(std::string_view id);
  Reply delete_file(std::string_view id);
  // GET /files/{id}/content; `range` is the request's Range header (`bytes=N-` or `bytes=N-M`), or empty.
  Reply file_content(std::string_view id, std::string_view range);

  // POST /batches, GET /batches/{id}, GET /batches[?after=&limit=], POST /batches/{id}/cancel.
  Reply create_batch(std::string_view body);
  Reply retrieve_batch(std::string_view id);
  Reply list_batches(std::string_view query);
  Reply cancel_batch(std::string_view id);

  // Holds, for tests that stop a client at a known moment (--batch-hold, POST /batch/hold?phase=...,
  // POST /batch/release): uploads are stored but not answered, batches stop advancing at a phase,
  // downloads stop after half their body. Throws std::invalid_argument for an unknown phase.
  void hold(std::string_view phase);
  void release();
  bool upload_held() const { return hold_.load() == Hold::kUpload; }
  bool download_held() const { return hold_.load() == Hold::kDownload; }
  Activity upload_activity() { return Activity(&uploads_in_progress_); }
  Activity download_activity() { return Activity(&downloads_in_progress_); }
  // An upload stored and waiting for the release (uploads_held): the moment a client has sent its file
  // and waits for the answer.
  Activity held_upload() { return Activity(&uploads_held_); }

  // {"files_uploaded","bytes_uploaded","lines_uploaded","batches_created","paid_lines","batches_cancelled",
  //  "content_downloads","uploads_in_progress","uploads_held","downloads_in_progress","files_stored","hold",
  //  "batches_by_status":{"in_progress":n,...}}
  std::string stats_json();
  // Zeroes the counters (not the gauges; stored files and batches stay).
  void reset_stats();

  // The holdable phases, for --help and the option's check.
  static const std::vector<std::string>& hold_phases();

 private:
  enum class Hold { kNone, kUpload, kValidating, kInProgress, kFinalizing, kDownload };
  struct File;
  struct Batch;

  struct Pace {
    std::chrono::milliseconds total, validating_end, in_progress_end, midpoint;
  };
  Pace pace() const;
  std::chrono::milliseconds elapsed(const Batch& batch, std::chrono::system_clock::time_point now) const;
  void advance(Batch& batch, std::chrono::system_clock::time_point now);
  void advance_all(std::chrono::system_clock::time_point now);
  void finish(Batch& batch, std::int64_t at_unix);
  std::string batch_json(const Batch& batch) const;
  std::string new_id(std::string_view prefix);
  std::string store_file(std::string filename, std::string purpose, std::string content,
                         std::int64_t created_at);

  const Options& options_;
  MarkerLedger& ledger_;
  Clock clock_;
  std::atomic<Hold> hold_{Hold::kNone};
  std::atomic<std::int64_t> uploads_in_progress_{0};
  std::atomic<std::int64_t> downloads_in_progress_{0};
  std::atomic<std::int64_t> uploads_held_{0};
  std::atomic<bool> create_answer_lost_{false};  // batch_create_lost fired (once a simulator)

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<File>, std::less<>> files_;
  std::vector<std::string> file_order_;  // ids, oldest first (deleted ones skipped when listing)
  std::map<std::string, std::unique_ptr<Batch>, std::less<>> batches_;
  std::vector<std::string> batch_order_;  // ids, oldest first
  std::uint64_t next_id_ = 0;
  std::size_t stored_bytes_ = 0;
  std::size_t uploaded_files_stored_ = 0;

  std::uint64_t files_uploaded_ = 0;
  std::uint64_t bytes_uploaded_ = 0;
  std::uint64_t lines_uploaded_ = 0;
  std::uint64_t batches_created_ = 0;
  std::uint64_t paid_lines_ = 0;
  std::uint64_t batches_cancelled_ = 0;
  std::uint64_t content_downloads_ = 0;
};

}  // namespace simulator
