// JSON forms of results: the report's `results[i]` (also a journal line), and the attempt outcome a
// worker sends to the supervisor. One codec for all of them, so the report, the journal and the wire
// cannot drift apart.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <optional>
#include <string>
#include <string_view>

#include "result.hpp"
#include "task.hpp"

namespace cbm {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

struct DecodeError {
  std::string message;
};

// ISO-8601 UTC with milliseconds: 2026-11-26T19:44:47.123Z
std::string iso8601(WallClock::time_point t);

// `"key":"value"`, the value any bytes (the writer escapes them).
void write_key_string(JsonWriter& w, const char* key, std::string_view value);
void write_usage(JsonWriter& w, const Usage& u);
// The report entry: the Python tool's fields (topic, success, analysis, error_message,
// execution_time) first, then the extensions.
void write_task_result(JsonWriter& w, const TaskResult& r);
std::string encode_task_result(const TaskResult& r);
Result<TaskResult, DecodeError> decode_task_result(const rapidjson::Value& v);

// A round's unread topics (task.hpp): the report's `not_read[i]` is {"round", "first_id", "end_id",
// "count"} (the last two null when the input's size was not known); its journal line wraps it as
// {"not_read": {...}}, which no result line begins with.
void write_unread_topics(JsonWriter& w, const UnreadTopics& u);
std::string encode_unread_journal_line(const UnreadTopics& u);
// The report entry inside a journal line that records unread topics; nullopt for any other line.
std::optional<std::string_view> unread_entry_of_journal_line(std::string_view line);
Result<UnreadTopics, DecodeError> decode_unread_topics(std::string_view entry);

// Worker <-> supervisor messages. With `with_trace`, an outcome's steps carry what tracing needs
// (start, messages, output), which the report and the journal leave out.
std::string encode_task(const Task& t);
Result<Task, DecodeError> decode_task(std::string_view json);
// What a worker gets after its config: a task to run, or (cancel) the end of its running attempt of
// task `task.id`, number `task.attempt` (a cancel carries no topic). A task's message decodes as a
// command without cancel.
struct WorkerCommand {
  Task task;
  bool cancel = false;
};
std::string encode_cancel(std::uint64_t task_id, int attempt);
Result<WorkerCommand, DecodeError> decode_worker_command(std::string_view json);
std::string encode_outcome(std::uint64_t task_id, int attempt, const AttemptOutcome& o, bool with_trace);
struct OutcomeMessage {
  std::uint64_t task_id = 0;
  int attempt = 0;
  AttemptOutcome outcome;
};
Result<OutcomeMessage, DecodeError> decode_outcome(std::string_view json);

}  // namespace cbm
