#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace simulator {

// LangSmith's POST /runs/batch: `{"post":[run...],"patch":[run...]}` checked the way the tracing
// contract reads (docs/protocol.md, "LangSmith ingestion"), stored, and dumped for tests by GET /runs.
// Thread-safe.
//
// A post needs: `id` and `trace_id` UUIDs; `dotted_order` of segments `<%Y%m%dT%H%M%S%fZ><uuid>`
// joined by '.', whose last uuid is the id, first uuid the trace_id, and last stamp the start_time;
// a root (one segment) has trace_id == id and no parent_run_id; a child has a `parent_run_id` that
// was posted (in this batch or an earlier one), shares its trace_id, and its dotted_order is the
// parent's plus '.' and one segment whose stamp is not earlier than the parent's; `name`;
// `run_type` chain|llm|tool|retriever|embedding|prompt|parser; `session_name`; `start_time` (and
// `end_time`, not before it) ISO-8601 with a zone; `inputs`, `outputs`, `extra` objects and `error`
// a string when present. A patch names a posted id, repeats its trace_id/dotted_order/parent_run_id
// if it gives them, and may set end_time, outputs, error. Posts are applied before patches.
class RunStore {
 public:
  enum class Verdict {
    kAccepted,   // 202
    kDuplicate,  // 409: a posted id is already stored (a retried batch); nothing is stored
    kInvalid,    // 400: nothing of the batch is stored
  };
  struct Answer {
    Verdict verdict;
    std::string message;  // why, when not accepted
  };

  Answer ingest(std::string_view body);

  // {"runs":[run...],"batches":n,"rejected":n,"rejections":["why"...]}: every stored run as posted
  // with its patches applied, in the order posted; `batches` accepted, `rejected` refused as invalid.
  std::string to_json() const;

 private:
  using Value = rapidjson::Value;

  std::string check_post(const Value& run, const std::map<std::string, const Value*, std::less<>>& batch) const;
  std::string check_patch(const Value& run, const std::map<std::string, const Value*, std::less<>>& batch) const;
  const Value* stored(std::string_view id) const;

  mutable std::mutex mutex_;
  rapidjson::Document arena_;  // owns the stored values' memory
  std::map<std::string, Value, std::less<>> runs_;
  std::vector<std::string> order_;
  std::uint64_t batches_ = 0;
  std::uint64_t rejected_ = 0;
  std::vector<std::string> rejections_;
};

}  // namespace simulator
