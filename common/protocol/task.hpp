// Task, AttemptOutcome and TaskResult: a topic to analyse, what one attempt at it produced, and the
// one terminal record every task ends in (the report's `results[i]`).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api_error.hpp"
#include "chat_types.hpp"
#include "row_fields.hpp"

namespace cbm {

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

struct Task {
  std::uint64_t id = 0;     // position in the run's input, unique within a round
  std::uint32_t round = 1;  // 1-based iteration
  std::string topic;
  int attempt = 1;          // 1-based; attempt max_retries+1 is the last
  Fields fields;            // the row's other fields (row_fields.hpp); none for text input
};

// One call of the pipeline (a model's, or the Web Search API's).
struct StepRecord {
  std::string name;   // "search" | "analysis"
  std::string model;  // the search engine for a Web Search API call
  std::string finish_reason;
  Usage usage;
  std::chrono::milliseconds latency{0};
  // For tracing (LangSmith): when the call began, what was sent and what came back. Carried from
  // worker to supervisor, never written to the report or the journal.
  WallClock::time_point started{};
  std::vector<Message> messages;
  std::string output;
  // In the report and the journal too.
  std::string request_id;   // ours, sent with the call (BigModel flavour)
  std::string response_id;  // the platform's `id` of its answer; empty when it failed
  std::string reasoning;    // the answer's reasoning_content, kept only with --keep-reasoning
  std::string batch_id = {};  // the Batch API batch that answered it (--via batch); empty: sent online
  // Invalid UTF-8 sequences in the server's answer (or error), each replaced by U+FFFD before it was
  // kept (wire_text.hpp); omitted from the JSON when 0.
  std::size_t replaced_characters = 0;

  // How the error of a failed step begins: "analysis step (request_id X): ". The pipeline writes it;
  // the tracer reads it to find the failed call.
  std::string error_prefix() const {
    std::string prefix = name;
    prefix += " step (request_id ";
    prefix += request_id;
    prefix += "): ";
    return prefix;
  }
};

// What one attempt produced. `error` is set iff the attempt failed.
struct AttemptOutcome {
  std::string analysis;
  std::vector<Source> sources;
  std::vector<StepRecord> steps;
  std::optional<ApiError> error;

  bool ok() const { return !error.has_value(); }
};

enum class TaskStatus { succeeded, failed, cancelled };
std::string_view to_string(TaskStatus s);

struct TaskResult {
  std::uint64_t id = 0;
  std::uint32_t round = 1;
  std::string topic;
  TaskStatus status = TaskStatus::failed;
  std::string analysis;
  std::vector<Source> sources;
  std::vector<StepRecord> steps;  // of the final attempt
  std::optional<ApiError> error;  // why it failed or was cancelled
  int attempts = 0;
  int worker = -1;                       // slot of the worker that ran the final attempt
  Usage usage;                           // summed over all attempts' steps
  WallClock::time_point started{};       // first attempt began
  WallClock::time_point finished{};      // terminal record written
  std::chrono::milliseconds execution_time{0};  // started -> finished, including retries and backoff
  std::optional<std::uint64_t> duplicate_of;    // a repeated topic: the id whose record this copies
  Fields fields;                                // the task's row fields; none for text input

  bool success() const { return status == TaskStatus::succeeded; }
};

// The topics of a round a stop left unread: ids `first_id` up to `end_id` (exclusive), or to the end
// of the input when its size was not known. One record instead of a cancelled one per topic, so a
// stop costs what was read, not the whole input (TaskBook::cancel_waiting). No topic in it ran;
// --resume reads them again (they have no record).
struct UnreadTopics {
  std::uint32_t round = 1;
  std::uint64_t first_id = 0;
  std::optional<std::uint64_t> end_id;  // nullopt: to the end of the input, its size unknown
  // Topics in the range that have a record all the same: finished by the run a --resume continues.
  std::uint64_t recorded = 0;

  // The topics of the range without a record.
  std::optional<std::uint64_t> count() const {
    if (!end_id) return std::nullopt;
    const std::uint64_t size = *end_id > first_id ? *end_id - first_id : 0;
    return size > recorded ? size - recorded : 0;
  }
};

}  // namespace cbm
