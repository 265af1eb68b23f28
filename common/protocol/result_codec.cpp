#include "result_codec.hpp"

#include <rapidjson/error/en.h>

#include <ctime>

#include "json_reader.hpp"

namespace cbm {
namespace {

using rapidjson::Value;
using std::chrono::microseconds;
using std::chrono::milliseconds;

void str(JsonWriter& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }


std::int64_t epoch_ms(WallClock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

void write_sources(JsonWriter& w, const std::vector<Source>& sources, bool with_content) {
  w.StartArray();
  for (const auto& s : sources) {
    w.StartObject();
    write_key_string(w, "title", s.title);
    write_key_string(w, "link", s.link);
    write_key_string(w, "media", s.media);
    write_key_string(w, "publish_date", s.publish_date);
    if (with_content) write_key_string(w, "content", s.content);
    w.EndObject();
  }
  w.EndArray();
}

// `with_trace`: also what tracing needs (the call's start, messages and output); the wire carries
// them, the report and the journal do not.
void write_steps(JsonWriter& w, const std::vector<StepRecord>& steps, bool with_trace) {
  w.StartArray();
  for (const auto& s : steps) {
    w.StartObject();
    write_key_string(w, "name", s.name);
    write_key_string(w, "model", s.model);
    write_key_string(w, "finish_reason", s.finish_reason);
    w.Key("latency_ms");
    w.Int64(s.latency.count());
    w.Key("usage");
    write_usage(w, s.usage);
    if (!s.request_id.empty()) write_key_string(w, "request_id", s.request_id);
    if (!s.response_id.empty()) write_key_string(w, "response_id", s.response_id);
    if (!s.batch_id.empty()) write_key_string(w, "batch_id", s.batch_id);
    if (!s.reasoning.empty()) write_key_string(w, "reasoning", s.reasoning);
    if (s.replaced_characters != 0) {
      w.Key("replaced_characters");
      w.Uint64(s.replaced_characters);
    }
    if (with_trace) {
      w.Key("started_at_us");
      w.Int64(std::chrono::duration_cast<microseconds>(s.started.time_since_epoch()).count());
      w.Key("messages");
      w.StartArray();
      for (const auto& m : s.messages) {
        w.StartObject();
        write_key_string(w, "role", m.role);
        write_key_string(w, "content", m.content);
        w.EndObject();
      }
      w.EndArray();
      write_key_string(w, "output", s.output);
    }
    w.EndObject();
  }
  w.EndArray();
}

// `"fields":{"name":"value",...}`, left out when there are none (text input), so a text run's records
// are what they always were.
void write_fields(JsonWriter& w, const Fields& fields) {
  if (fields.empty()) return;
  w.Key("fields");
  w.StartObject();
  for (const auto& f : fields) write_key_string(w, f.name.c_str(), f.value);
  w.EndObject();
}

void read_fields(JsonReader& r, Fields& out) {
  const Value* v = r.object("fields");
  if (v == nullptr) return;
  for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it) {
    if (!it->value.IsString()) {
      r.fail("fields", "values must be strings");
      return;
    }
    out.push_back({std::string(it->name.GetString(), it->name.GetStringLength()),
                   std::string(it->value.GetString(), it->value.GetStringLength())});
  }
}

void write_error(JsonWriter& w, const ApiError& e) {
  w.StartObject();
  write_key_string(w, "class", to_string(e.error_class));
  write_key_string(w, "kind", to_string(e.kind));
  w.Key("http_status");
  w.Int(e.http_status);
  write_key_string(w, "code", e.code);
  write_key_string(w, "message", e.message);
  if (e.retry_after) {
    w.Key("retry_after_ms");
    w.Int64(e.retry_after->count());
  }
  if (e.resume_at) {
    w.Key("resume_at_ms");
    w.Int64(epoch_ms(*e.resume_at));
  }
  w.EndObject();
}

void read_usage(JsonReader& r, Usage& u) {
  if (const Value* v = r.object("usage")) {
    std::string err;
    JsonReader ur(*v, "", err);
    ur.integer("prompt_tokens", u.prompt_tokens);
    ur.integer("completion_tokens", u.completion_tokens);
    ur.integer("total_tokens", u.total_tokens);
    if (!err.empty()) r.fail("usage", err);
  }
}

template <typename T, typename F>
void read_array(JsonReader& r, const char* name, std::string& error, std::vector<T>& out, F&& read_one) {
  const Value* arr = r.array(name);
  if (arr == nullptr) return;
  for (rapidjson::SizeType i = 0; i < arr->Size(); ++i) {
    const Value& item = (*arr)[i];
    if (!item.IsObject()) {
      r.fail(name, "elements must be objects");
      return;
    }
    JsonReader ir(item, r.element_path(name, i), error);
    T t;
    read_one(ir, t);
    out.push_back(std::move(t));
  }
}

void read_sources(JsonReader& r, std::string& error, std::vector<Source>& out) {
  read_array(r, "sources", error, out, [](JsonReader& sr, Source& s) {
    sr.string("title", s.title);
    sr.string("link", s.link);
    sr.string("media", s.media);
    sr.string("publish_date", s.publish_date);
    sr.string("content", s.content);
  });
}

void read_steps(JsonReader& r, std::string& error, std::vector<StepRecord>& out) {
  read_array(r, "steps", error, out, [&error](JsonReader& sr, StepRecord& s) {
    sr.string("name", s.name);
    sr.string("model", s.model);
    sr.string("finish_reason", s.finish_reason);
    std::int64_t ms = 0;
    sr.integer("latency_ms", ms);
    s.latency = milliseconds(ms);
    read_usage(sr, s.usage);
    sr.string("request_id", s.request_id);
    sr.string("response_id", s.response_id);
    sr.string("batch_id", s.batch_id);
    sr.string("reasoning", s.reasoning);
    std::int64_t replaced = 0;
    sr.integer("replaced_characters", replaced);
    if (replaced < 0) sr.fail("replaced_characters", "must not be negative");
    s.replaced_characters = static_cast<std::size_t>(replaced);
    std::int64_t started_us = 0;
    sr.integer("started_at_us", started_us);
    s.started = WallClock::time_point(std::chrono::duration_cast<WallClock::duration>(microseconds(started_us)));
    read_array(sr, "messages", error, s.messages, [](JsonReader& mr, Message& m) {
      mr.string("role", m.role);
      mr.string("content", m.content);
    });
    sr.string("output", s.output);
  });
}

void read_error(JsonReader& r, std::string& error, std::optional<ApiError>& out) {
  const Value* v = r.object("error");
  if (v == nullptr) return;
  JsonReader er(*v, r.child_path("error"), error);
  ApiError e;
  std::string cls;
  std::string kind;
  er.string("class", cls);
  er.string("kind", kind);
  er.integer("http_status", e.http_status);
  er.string("code", e.code);
  er.string("message", e.message);
  std::int64_t retry_after = -1;
  er.integer("retry_after_ms", retry_after);
  if (retry_after >= 0) e.retry_after = milliseconds(retry_after);
  std::int64_t resume_at = -1;
  er.integer("resume_at_ms", resume_at);
  if (resume_at >= 0) {
    e.resume_at = WallClock::time_point(std::chrono::duration_cast<WallClock::duration>(milliseconds(resume_at)));
  }
  auto c = error_class_from_string(cls);
  auto k = error_kind_from_string(kind);
  if (!c) er.fail("class", "unknown error class '" + cls + "'");
  if (!k) er.fail("kind", "unknown error kind '" + kind + "'");
  if (c && k) {
    e.error_class = *c;
    e.kind = *k;
    out = std::move(e);
  }
}

Result<rapidjson::Document, DecodeError> parse_object(std::string_view json, const char* what) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError()) {
    return Err{DecodeError{std::string(what) + ": invalid JSON at offset " + std::to_string(doc.GetErrorOffset()) +
                           ": " + rapidjson::GetParseError_En(doc.GetParseError())}};
  }
  if (!doc.IsObject()) return Err{DecodeError{std::string(what) + ": expected a JSON object"}};
  return doc;
}

template <typename F>
std::string to_json(F&& write) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  write(w);
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace

std::string_view to_string(TaskStatus s) {
  switch (s) {
    case TaskStatus::succeeded:
      return "succeeded";
    case TaskStatus::failed:
      return "failed";
    case TaskStatus::cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string iso8601(WallClock::time_point t) {
  const std::int64_t ms = epoch_ms(t);
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%.*s.%03dZ", static_cast<int>(n), buf, static_cast<int>(ms % 1000));
  return out;
}

void write_key_string(JsonWriter& w, const char* key, std::string_view value) {
  w.Key(key);
  str(w, value);
}

void write_usage(JsonWriter& w, const Usage& u) {
  w.StartObject();
  w.Key("prompt_tokens");
  w.Int64(u.prompt_tokens);
  w.Key("completion_tokens");
  w.Int64(u.completion_tokens);
  w.Key("total_tokens");
  w.Int64(u.total_tokens);
  w.EndObject();
}

void write_task_result(JsonWriter& w, const TaskResult& r) {
  w.StartObject();
  write_key_string(w, "topic", r.topic);
  w.Key("success");
  w.Bool(r.success());
  write_key_string(w, "analysis", r.analysis);
  w.Key("error_message");
  if (r.error) {
    str(w, r.error->describe());
  } else {
    w.Null();
  }
  w.Key("execution_time");
  w.Double(static_cast<double>(r.execution_time.count()) / 1000.0);
  write_key_string(w, "status", to_string(r.status));
  w.Key("id");
  w.Uint64(r.id);
  w.Key("round");
  w.Uint(r.round);
  write_fields(w, r.fields);
  w.Key("attempts");
  w.Int(r.attempts);
  w.Key("worker");
  w.Int(r.worker);
  write_key_string(w, "started_at", iso8601(r.started));
  write_key_string(w, "finished_at", iso8601(r.finished));
  w.Key("started_at_ms");
  w.Int64(epoch_ms(r.started));
  w.Key("finished_at_ms");
  w.Int64(epoch_ms(r.finished));
  w.Key("usage");
  write_usage(w, r.usage);
  w.Key("sources");
  write_sources(w, r.sources, false);
  w.Key("steps");
  write_steps(w, r.steps, false);
  if (r.error) {
    w.Key("error");
    write_error(w, *r.error);
  }
  if (r.duplicate_of) {
    w.Key("duplicate_of");
    w.Uint64(*r.duplicate_of);
  }
  w.EndObject();
}

std::string encode_task_result(const TaskResult& r) {
  return to_json([&](JsonWriter& w) { write_task_result(w, r); });
}

Result<TaskResult, DecodeError> decode_task_result(const Value& v) {
  if (!v.IsObject()) return Err{DecodeError{"result: expected a JSON object"}};
  std::string error;
  JsonReader r(v, "", error);
  TaskResult t;
  std::int64_t id = -1;
  int round = 0;
  std::string status;
  std::int64_t started = 0;
  std::int64_t finished = 0;
  double execution_time = 0;
  r.string("topic", t.topic);
  r.string("analysis", t.analysis);
  r.string("status", status);
  r.integer("id", id);
  r.integer("round", round);
  r.integer("attempts", t.attempts);
  r.integer("worker", t.worker);
  r.integer("started_at_ms", started);
  r.integer("finished_at_ms", finished);
  r.number("execution_time", execution_time);
  read_fields(r, t.fields);
  read_usage(r, t.usage);
  read_sources(r, error, t.sources);
  read_steps(r, error, t.steps);
  read_error(r, error, t.error);
  if (status == "succeeded") {
    t.status = TaskStatus::succeeded;
  } else if (status == "failed") {
    t.status = TaskStatus::failed;
  } else if (status == "cancelled") {
    t.status = TaskStatus::cancelled;
  } else {
    r.fail("status", "unknown status '" + status + "'");
  }
  std::int64_t duplicate_of = -1;
  r.integer("duplicate_of", duplicate_of);
  if (duplicate_of >= 0) t.duplicate_of = static_cast<std::uint64_t>(duplicate_of);
  if (id < 0) r.fail("id", "missing");
  if (round < 1) r.fail("round", "missing or below 1");
  if (!error.empty()) return Err{DecodeError{"result: " + error}};
  t.id = static_cast<std::uint64_t>(id);
  t.round = static_cast<std::uint32_t>(round);
  t.started = WallClock::time_point(milliseconds(started));
  t.finished = WallClock::time_point(milliseconds(finished));
  t.execution_time = milliseconds(static_cast<std::int64_t>(execution_time * 1000.0 + 0.5));
  return t;
}

namespace {
constexpr std::string_view kUnreadLinePrefix = "{\"not_read\":";
}  // namespace

void write_unread_topics(JsonWriter& w, const UnreadTopics& u) {
  w.StartObject();
  w.Key("round");
  w.Uint(u.round);
  w.Key("first_id");
  w.Uint64(u.first_id);
  w.Key("end_id");
  u.end_id ? w.Uint64(*u.end_id) : w.Null();
  w.Key("count");
  const auto count = u.count();
  count ? w.Uint64(*count) : w.Null();
  if (u.recorded > 0) {
    w.Key("recorded");
    w.Uint64(u.recorded);
  }
  w.EndObject();
}

std::string encode_unread_journal_line(const UnreadTopics& u) {
  return to_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("not_read");
    write_unread_topics(w, u);
    w.EndObject();
  });
}

std::optional<std::string_view> unread_entry_of_journal_line(std::string_view line) {
  if (!line.starts_with(kUnreadLinePrefix) || !line.ends_with('}')) return std::nullopt;
  line.remove_prefix(kUnreadLinePrefix.size());
  line.remove_suffix(1);
  return line;
}

Result<UnreadTopics, DecodeError> decode_unread_topics(std::string_view entry) {
  auto doc = parse_object(entry, "not_read");
  if (!doc) return Err{doc.error()};
  std::string error;
  JsonReader r(doc.value(), "", error);
  int round = 0;
  std::int64_t first = -1;
  std::int64_t end = -1;
  r.integer("round", round);
  r.integer("first_id", first);
  std::int64_t recorded = 0;
  r.integer("recorded", recorded);
  if (recorded < 0) r.fail("recorded", "must not be negative");
  if (doc.value().HasMember("end_id") && !doc.value()["end_id"].IsNull()) {
    r.integer("end_id", end);
    if (end < 0) r.fail("end_id", "must not be negative");
  }
  if (round < 1) r.fail("round", "missing or below 1");
  if (first < 0) r.fail("first_id", "missing");
  if (!error.empty()) return Err{DecodeError{"not_read: " + error}};
  UnreadTopics u;
  u.round = static_cast<std::uint32_t>(round);
  u.first_id = static_cast<std::uint64_t>(first);
  if (end >= 0) u.end_id = static_cast<std::uint64_t>(end);
  u.recorded = static_cast<std::uint64_t>(recorded);
  return u;
}

std::string encode_task(const Task& t) {
  return to_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("id");
    w.Uint64(t.id);
    w.Key("round");
    w.Uint(t.round);
    write_key_string(w, "topic", t.topic);
    w.Key("attempt");
    w.Int(t.attempt);
    write_fields(w, t.fields);
    w.EndObject();
  });
}

std::string encode_cancel(std::uint64_t task_id, int attempt) {
  return to_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("id");
    w.Uint64(task_id);
    w.Key("round");
    w.Uint(1);
    w.Key("attempt");
    w.Int(attempt);
    w.Key("cancel");
    w.Bool(true);
    w.EndObject();
  });
}

Result<WorkerCommand, DecodeError> decode_worker_command(std::string_view json) {
  auto doc = parse_object(json, "task");
  if (!doc) return Err{doc.error()};
  std::string error;
  JsonReader r(doc.value(), "", error);
  WorkerCommand c;
  Task& t = c.task;
  std::int64_t id = -1;
  int round = 0;
  r.integer("id", id);
  r.integer("round", round);
  r.boolean("cancel", c.cancel);
  r.string("topic", t.topic);
  r.integer("attempt", t.attempt);
  read_fields(r, t.fields);
  if (id < 0) r.fail("id", "missing");
  if (round < 1) r.fail("round", "missing or below 1");
  if (!error.empty()) return Err{DecodeError{"task: " + error}};
  t.id = static_cast<std::uint64_t>(id);
  t.round = static_cast<std::uint32_t>(round);
  return c;
}

Result<Task, DecodeError> decode_task(std::string_view json) {
  auto command = decode_worker_command(json);
  if (!command) return Err{command.error()};
  if (command->cancel) return Err{DecodeError{"task: a cancel, not a task"}};
  return std::move(command->task);
}

std::string encode_outcome(std::uint64_t task_id, int attempt, const AttemptOutcome& o, bool with_trace) {
  return to_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("task_id");
    w.Uint64(task_id);
    w.Key("attempt");
    w.Int(attempt);
    write_key_string(w, "analysis", o.analysis);
    w.Key("sources");
    write_sources(w, o.sources, false);
    w.Key("steps");
    write_steps(w, o.steps, with_trace);
    if (o.error) {
      w.Key("error");
      write_error(w, *o.error);
    }
    w.EndObject();
  });
}

Result<OutcomeMessage, DecodeError> decode_outcome(std::string_view json) {
  auto doc = parse_object(json, "outcome");
  if (!doc) return Err{doc.error()};
  std::string error;
  JsonReader r(doc.value(), "", error);
  OutcomeMessage m;
  std::int64_t id = -1;
  r.integer("task_id", id);
  r.integer("attempt", m.attempt);
  r.string("analysis", m.outcome.analysis);
  read_sources(r, error, m.outcome.sources);
  read_steps(r, error, m.outcome.steps);
  read_error(r, error, m.outcome.error);
  if (id < 0) r.fail("task_id", "missing");
  if (!error.empty()) return Err{DecodeError{"outcome: " + error}};
  m.task_id = static_cast<std::uint64_t>(id);
  return m;
}

}  // namespace cbm
