#include "batch_store.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <random>
#include <stdexcept>
#include <unordered_set>

#include "answer.h"
#include "chat_request.h"
#include "completion.h"
#include "multipart.h"

namespace simulator {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;
using TimePoint = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

constexpr std::string_view kEndpoint = "/v4/chat/completions";
constexpr std::size_t kMaxBatchOutput = std::size_t{256} << 20;  // a batch's files: huge faults stop there
constexpr std::size_t kMaxUploadedFiles = 1000;                  // batch files stored, as documented
constexpr std::size_t kMaxStoredBytes = std::size_t{2}
                                        << 30;  // every file together: the simulator's own bound
constexpr std::size_t kMaxBatches = 10000;
constexpr std::size_t kMaxValidationErrors = 1000;
constexpr std::size_t kMultipartOverhead = 64 * 1024;
constexpr std::size_t kMaxMetadataKeys = 16;
constexpr std::size_t kMaxMetadataKey = 64;
constexpr std::size_t kMaxMetadataValue = 512;
constexpr std::string_view kFailMarker = "[[fault:batch_fail]]";
constexpr std::string_view kExpireMarker = "[[fault:batch_expire]]";
constexpr std::string_view kDropMarker = "[[fault:batch_drop_download]]";
constexpr std::string_view kCreateLostMarker = "[[fault:batch_create_lost]]";
constexpr std::string_view kLostOutputMarker = "[[fault:batch_lost_output]]";

const std::vector<std::string> kHoldPhases = {"none",        "upload",     "validating",
                                              "in_progress", "finalizing", "download"};

// Text joined by appending (g++ 12 -O3 warns falsely, -Wrestrict, on `"literal" + std::string(...)`).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

// At most `max` bytes of client text for a message, each outside printable ASCII shown as '?': a message
// quoting garbage stays valid UTF-8.
std::string quoted(std::string_view text, std::size_t max) {
  std::string out(text.substr(0, max));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

void string(JsonWriter& writer, std::string_view text) {
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}
void key(JsonWriter& writer, std::string_view name) {
  writer.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}
void optional_int(JsonWriter& writer, std::string_view name, const std::optional<std::int64_t>& value) {
  key(writer, name);
  if (value) {
    writer.Int64(*value);
  } else {
    writer.Null();
  }
}
void optional_string(JsonWriter& writer, std::string_view name, const std::optional<std::string>& value) {
  key(writer, name);
  if (value) {
    string(writer, *value);
  } else {
    writer.Null();
  }
}
std::string take(const rapidjson::StringBuffer& buffer) {
  return {buffer.GetString(), buffer.GetSize()};
}

std::int64_t unix_seconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

BatchStore::Reply json_reply(unsigned status, std::string body) {
  BatchStore::Reply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}
BatchStore::Reply file_reply(unsigned status) {
  BatchStore::Reply reply;
  reply.status = status;
  reply.content_type = "application/jsonl";
  return reply;
}
BatchStore::Reply error_reply(const ApiError& error) {
  return json_reply(error.status, error.body());
}
ApiError bad_request(std::string message) {
  return ApiError{400, "1214", std::move(message)};
}
ApiError no_such(std::string_view what, std::string_view id) {
  std::string message = "No such ";
  message.append(what).append(": ").append(id);
  return ApiError{404, "404", std::move(message)};
}

// `name`'s value in a query string (no percent-decoding: ids and numbers need none).
std::optional<std::string_view> query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
  }
  return std::nullopt;
}

// limit=N within [1, max]; `fallback` when absent; nullopt when malformed or out of range.
std::optional<std::size_t> query_limit(std::string_view query, std::size_t fallback, std::size_t max) {
  const auto text = query_value(query, "limit");
  if (!text) return fallback;
  std::size_t n = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc{} || end != text->data() + text->size() || n < 1 || n > max) return std::nullopt;
  return n;
}

std::size_t count_lines(std::string_view content) {
  std::size_t lines = 0;
  while (!content.empty()) {
    const std::size_t nl = content.find('\n');
    const std::string_view line = content.substr(0, nl);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) ++lines;
    if (nl == std::string_view::npos) break;
    content.remove_prefix(nl + 1);
  }
  return lines;
}

std::string serialize(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  value.Accept(writer);
  return take(buffer);
}

// One line of an output or error file: {"response":{"status_code":N,"body":{...}},"custom_id":..,"id":..}.
std::string output_line(unsigned status, std::string_view body, std::string_view custom_id,
                        std::string_view id) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  key(writer, "response");
  writer.StartObject();
  key(writer, "status_code");
  writer.Uint(status);
  key(writer, "body");
  writer.RawValue(body.data(), body.size(), rapidjson::kObjectType);
  writer.EndObject();
  key(writer, "custom_id");
  string(writer, custom_id);
  key(writer, "id");
  string(writer, id);
  writer.EndObject();
  return take(buffer);
}

}  // namespace

struct BatchStore::File {
  std::string id;
  std::string filename;
  std::string purpose;
  std::string content;
  std::int64_t created_at = 0;
  bool drop_once = false;  // batch_drop_download: the next download is cut midway
};

struct BatchStore::Batch {
  struct Line {
    bool ok = false;
    std::string text;  // the output or error file line
  };
  struct ValidationError {
    std::string code;
    std::size_t line = 0;
    std::string message;
    std::optional<std::string> param;
  };

  std::string id;
  std::string input_file_id;
  std::string endpoint;
  std::string metadata = "null";  // raw JSON
  bool auto_delete_input_file = true;
  TimePoint origin;  // where progress is measured from; moved forward by holds
  std::int64_t created_at = 0;
  std::int64_t expires_at = 0;
  std::optional<std::int64_t> in_progress_at, finalizing_at, completed_at, failed_at, expired_at,
      cancelling_at, cancelled_at;
  std::string status = "validating";
  std::vector<Line> lines;
  std::vector<std::size_t> ok_before;  // ok_before[i]: lines among the first i that succeeded
  std::vector<ValidationError> errors;
  bool expire = false;
  bool drop_download = false;
  bool lose_output = false;  // batch_lost_output: its output file id names no file
  std::optional<TimePoint> cancel_requested;
  std::size_t done = 0;  // lines finished
  std::optional<std::string> output_file_id, error_file_id;
  bool finished = false;  // a terminal status, files written
};

BatchStore::BatchStore(const Options& options, MarkerLedger& ledger, Clock clock)
    : options_(options), ledger_(ledger), clock_(std::move(clock)) {
  if (!options_.batch_hold.empty()) hold(options_.batch_hold);
}

BatchStore::~BatchStore() = default;

const std::vector<std::string>& BatchStore::hold_phases() {
  return kHoldPhases;
}

std::size_t BatchStore::upload_body_limit() const {
  return options_.batch_max_file_bytes + kMultipartOverhead;
}

ApiError BatchStore::file_too_large(std::size_t cap) {
  std::string message = "文件大小超过限制：至多 ";
  message.append(std::to_string(cap)).append(" 字节 (file too large)");
  return ApiError{435, "1210", std::move(message)};
}

std::string BatchStore::new_id(std::string_view prefix) {
  static const std::uint64_t salt = std::random_device{}() % 1000000;
  std::string id(prefix);
  id.append(std::to_string(salt * 10000000000ull + 1000000000ull + ++next_id_));
  return id;
}

std::string BatchStore::store_file(std::string filename, std::string purpose, std::string content,
                                   std::int64_t created_at) {
  auto file = std::make_unique<File>();
  file->id = new_id("file_");
  file->filename = std::move(filename);
  file->purpose = std::move(purpose);
  file->content = std::move(content);
  file->created_at = created_at;
  stored_bytes_ += file->content.size();
  std::string id = file->id;
  file_order_.push_back(id);
  files_.emplace(id, std::move(file));
  return id;
}

namespace {
void write_file(JsonWriter& writer, const std::string& id, const std::string& filename,
                const std::string& purpose, std::size_t bytes, std::int64_t created_at) {
  writer.StartObject();
  key(writer, "id");
  string(writer, id);
  key(writer, "object");
  string(writer, "file");
  key(writer, "bytes");
  writer.Uint64(bytes);
  key(writer, "created_at");
  writer.Int64(created_at);
  key(writer, "filename");
  string(writer, filename);
  key(writer, "purpose");
  string(writer, purpose);
  writer.EndObject();
}
}  // namespace

// ---- Files
// --------------------------------------------------------------------------------------------------

BatchStore::Reply BatchStore::upload(std::string_view content_type, std::string_view body) {
  const auto boundary = multipart_boundary(content_type);
  if (boundary.index() == 1) return error_reply(bad_request(std::get<1>(boundary)));
  const auto parsed = parse_multipart(body, std::get<0>(boundary));
  if (parsed.index() == 1) return error_reply(bad_request(std::get<1>(parsed)));
  const auto& parts = std::get<0>(parsed);

  const FormPart* purpose = nullptr;
  const FormPart* file = nullptr;
  for (const FormPart& part : parts) {
    if (part.name == "purpose" && !part.filename) purpose = &part;
    if (part.name == "file" && part.filename) file = &part;
  }
  if (purpose == nullptr)
    return error_reply(bad_request("multipart field purpose missing (want purpose=batch)"));
  if (purpose->content != "batch") {
    return error_reply(bad_request(cat("purpose must be batch, not '", quoted(purpose->content, 64), "'")));
  }
  if (file == nullptr) return error_reply(bad_request("multipart part file (with a filename) missing"));
  if (!file->filename->ends_with(".jsonl")) {
    return error_reply(
        bad_request(cat("file must be a .jsonl file, not '", quoted(*file->filename, 200), "'")));
  }
  if (file->content.size() > options_.batch_max_file_bytes) {
    return error_reply(file_too_large(options_.batch_max_file_bytes));
  }
  const std::size_t lines = count_lines(file->content);

  std::lock_guard lock(mutex_);
  if (uploaded_files_stored_ >= kMaxUploadedFiles) {
    return error_reply(bad_request("at most 1000 batch files may be stored; delete some first"));
  }
  if (stored_bytes_ + file->content.size() > kMaxStoredBytes) {
    return error_reply(bad_request("the simulator's file storage is full; delete some files first"));
  }
  const std::int64_t now = unix_seconds(clock_());
  const std::string id = store_file(*file->filename, "batch", std::string(file->content), now);
  ++uploaded_files_stored_;
  ++files_uploaded_;
  bytes_uploaded_ += file->content.size();
  lines_uploaded_ += lines;

  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  write_file(writer, id, *file->filename, "batch", file->content.size(), now);
  return json_reply(200, take(buffer));
}

BatchStore::Reply BatchStore::list_files(std::string_view query) {
  const auto limit = query_limit(query, 10000, 10000);
  if (!limit) return error_reply(bad_request("limit must be an integer from 1 to 10000"));
  const auto purpose = query_value(query, "purpose");
  const auto after = query_value(query, "after");
  std::lock_guard lock(mutex_);
  advance_all(clock_());
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  key(writer, "object");
  string(writer, "list");
  key(writer, "data");
  writer.StartArray();
  bool started = !after;
  std::size_t written = 0;
  bool has_more = false;
  std::optional<std::string> first_id, last_id;
  for (auto it = file_order_.rbegin(); it != file_order_.rend(); ++it) {  // newest first
    const auto found = files_.find(*it);
    if (found == files_.end()) continue;
    const File& f = *found->second;
    if (!started) {
      started = f.id == *after;
      continue;
    }
    if (purpose && f.purpose != *purpose) continue;
    if (written == *limit) {
      has_more = true;
      break;
    }
    write_file(writer, f.id, f.filename, f.purpose, f.content.size(), f.created_at);
    if (!first_id) first_id = f.id;
    last_id = f.id;
    ++written;
  }
  writer.EndArray();
  optional_string(writer, "first_id", first_id);
  optional_string(writer, "last_id", last_id);
  key(writer, "has_more");
  writer.Bool(has_more);
  writer.EndObject();
  return json_reply(200, take(buffer));
}

BatchStore::Reply BatchStore::retrieve_file(std::string_view id) {
  std::lock_guard lock(mutex_);
  advance_all(clock_());
  const auto it = files_.find(id);
  if (it == files_.end()) return error_reply(no_such("file", id));
  const File& f = *it->second;
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  write_file(writer, f.id, f.filename, f.purpose, f.content.size(), f.created_at);
  return json_reply(200, take(buffer));
}

BatchStore::Reply BatchStore::delete_file(std::string_view id) {
  std::lock_guard lock(mutex_);
  const auto it = files_.find(id);
  if (it == files_.end()) return error_reply(no_such("file", id));
  stored_bytes_ -= it->second->content.size();
  if (it->second->purpose == "batch") --uploaded_files_stored_;
  const std::string deleted = it->second->id;
  files_.erase(it);
  std::erase(file_order_, deleted);
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  key(writer, "id");
  string(writer, deleted);
  key(writer, "object");
  string(writer, "file");
  key(writer, "deleted");
  writer.Bool(true);
  writer.EndObject();
  return json_reply(200, take(buffer));
}

BatchStore::Reply BatchStore::file_content(std::string_view id, std::string_view range) {
  std::lock_guard lock(mutex_);
  advance_all(clock_());
  const auto it = files_.find(id);
  if (it == files_.end()) return error_reply(no_such("file", id));
  File& f = *it->second;
  ++content_downloads_;
  Reply reply = file_reply(200);
  // Range: bytes=N- or bytes=N-M (one range); anything else is served whole, as servers may.
  std::size_t begin = 0;
  std::size_t end = f.content.size();
  if (range.starts_with("bytes=") && range.find(',') == std::string_view::npos) {
    const std::string_view spec = range.substr(6);
    const std::size_t dash = spec.find('-');
    std::size_t first = 0;
    std::size_t last = 0;
    const auto [p1, e1] = std::from_chars(
        spec.data(), spec.data() + (dash == std::string_view::npos ? spec.size() : dash), first);
    const bool first_ok =
        dash != std::string_view::npos && dash > 0 && e1 == std::errc{} && p1 == spec.data() + dash;
    const std::string_view tail = dash == std::string_view::npos ? std::string_view{} : spec.substr(dash + 1);
    bool last_ok = tail.empty();
    if (!tail.empty()) {
      const auto [p2, e2] = std::from_chars(tail.data(), tail.data() + tail.size(), last);
      last_ok = e2 == std::errc{} && p2 == tail.data() + tail.size() && last >= first;
    }
    if (first_ok && last_ok) {
      if (first >= f.content.size()) {
        Reply unsatisfiable = file_reply(416);
        unsatisfiable.content_range = cat("bytes */", std::to_string(f.content.size()));
        return unsatisfiable;
      }
      begin = first;
      if (!tail.empty() && last < end) end = last + 1;
      reply.status = 206;
      reply.content_range = cat("bytes ", std::to_string(begin), "-", std::to_string(end - 1), "/",
                                std::to_string(f.content.size()));
    }
  }
  reply.body = f.content.substr(begin, end - begin);
  reply.cut_midway = std::exchange(f.drop_once, false);
  return reply;
}

// ---- Batches
// ------------------------------------------------------------------------------------------------

BatchStore::Reply BatchStore::create_batch(std::string_view body) {
  rapidjson::Document request;
  request.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (request.HasParseError() || !request.IsObject()) return error_reply(api_errors::malformed_json());
  const auto input = request.FindMember("input_file_id");
  if (input == request.MemberEnd() || !input->value.IsString()) {
    return error_reply(api_errors::invalid_field("input_file_id", "required, a string"));
  }
  const auto endpoint = request.FindMember("endpoint");
  if (endpoint == request.MemberEnd() || !endpoint->value.IsString() ||
      std::string_view(endpoint->value.GetString(), endpoint->value.GetStringLength()) != kEndpoint) {
    return error_reply(api_errors::invalid_field("endpoint", "required, \"/v4/chat/completions\""));
  }
  bool auto_delete = true;
  if (const auto it = request.FindMember("auto_delete_input_file"); it != request.MemberEnd()) {
    if (!it->value.IsBool())
      return error_reply(api_errors::invalid_field("auto_delete_input_file", "a boolean"));
    auto_delete = it->value.GetBool();
  }
  std::string metadata = "null";
  if (const auto it = request.FindMember("metadata"); it != request.MemberEnd() && !it->value.IsNull()) {
    if (!it->value.IsObject() || it->value.MemberCount() > kMaxMetadataKeys) {
      return error_reply(api_errors::invalid_field("metadata", "an object of at most 16 keys"));
    }
    for (const auto& m : it->value.GetObject()) {
      if (m.name.GetStringLength() > kMaxMetadataKey || !m.value.IsString() ||
          m.value.GetStringLength() > kMaxMetadataValue) {
        return error_reply(api_errors::invalid_field(
            "metadata", "keys of at most 64 characters, string values of at most 512"));
      }
    }
    metadata = serialize(it->value);
  }
  const std::string_view input_id(input->value.GetString(), input->value.GetStringLength());

  // The file is read under the lock, the lines answered outside it.
  std::string content;
  {
    std::lock_guard lock(mutex_);
    if (batches_.size() >= kMaxBatches)
      return error_reply(bad_request("the simulator holds 10000 batches at most"));
    const auto file = files_.find(input_id);
    if (file == files_.end()) return error_reply(no_such("file", input_id));
    if (file->second->purpose != "batch") {
      return error_reply(api_errors::invalid_field("input_file_id", "a file uploaded with purpose batch"));
    }
    content = file->second->content;
  }

  auto batch = std::make_unique<Batch>();
  batch->input_file_id = std::string(input_id);
  batch->endpoint = std::string(kEndpoint);
  batch->metadata = std::move(metadata);
  batch->auto_delete_input_file = auto_delete;
  batch->expire = content.find(kExpireMarker) != std::string::npos;
  batch->drop_download = content.find(kDropMarker) != std::string::npos;
  batch->lose_output = content.find(kLostOutputMarker) != std::string::npos;
  // batch_create_lost: the first such create makes its batch, then answers 500 as if the answer was lost.
  const bool lose_answer =
      content.find(kCreateLostMarker) != std::string::npos && !create_answer_lost_.exchange(true);

  // Validation, line by line, as the platform reports it: errors.data[{code,line,message,param}].
  const auto invalid = [&batch](std::string code, std::size_t line, std::string message,
                                std::optional<std::string> param) {
    if (batch->errors.size() < kMaxValidationErrors) {
      batch->errors.push_back({std::move(code), line, std::move(message), std::move(param)});
    }
  };
  struct Valid {
    std::string custom_id;
    std::string body;
  };
  std::vector<Valid> valid;
  std::unordered_set<std::string> custom_ids;
  std::optional<std::string> model;
  std::string_view rest = content;
  std::size_t line_number = 0;
  std::size_t nonblank = 0;
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (++nonblank > options_.batch_max_lines) {
      invalid("too_many_lines", line_number,
              cat("a batch file holds at most ", std::to_string(options_.batch_max_lines), " requests"),
              std::nullopt);
      break;
    }
    if (line.find(kFailMarker) != std::string_view::npos) {
      invalid("simulated_failure", line_number, "rejected by the batch_fail marker", std::nullopt);
      continue;
    }
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(line.data(), line.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      invalid("invalid_json_line", line_number, "the line is not a JSON object", std::nullopt);
      continue;
    }
    const auto cid = doc.FindMember("custom_id");
    if (cid == doc.MemberEnd() || !cid->value.IsString() || cid->value.GetStringLength() == 0) {
      invalid("missing_custom_id", line_number, "custom_id is required, a non-empty string", "custom_id");
      continue;
    }
    std::string custom_id(cid->value.GetString(), cid->value.GetStringLength());
    if (!custom_ids.insert(custom_id).second) {
      invalid("duplicate_custom_id", line_number, cat("custom_id ", quoted(custom_id, 200), " is not unique"),
              "custom_id");
      continue;
    }
    const auto method = doc.FindMember("method");
    if (method == doc.MemberEnd() || !method->value.IsString() ||
        std::string_view(method->value.GetString()) != "POST") {
      invalid("invalid_method", line_number, "method must be POST", "method");
      continue;
    }
    const auto url = doc.FindMember("url");
    if (url == doc.MemberEnd() || !url->value.IsString() ||
        std::string_view(url->value.GetString(), url->value.GetStringLength()) != kEndpoint) {
      invalid("invalid_url", line_number, "url must be /v4/chat/completions", "url");
      continue;
    }
    const auto body_member = doc.FindMember("body");
    if (body_member == doc.MemberEnd() || !body_member->value.IsObject()) {
      invalid("missing_body", line_number, "body is required, an object", "body");
      continue;
    }
    const auto line_model = body_member->value.FindMember("model");
    if (line_model == body_member->value.MemberEnd() || !line_model->value.IsString()) {
      invalid("missing_model", line_number, "body.model is required, a string", "body.model");
      continue;
    }
    const std::string this_model(line_model->value.GetString(), line_model->value.GetStringLength());
    if (!model) model = this_model;
    if (*model != this_model) {
      invalid("mixed_models", line_number,
              cat("a batch file uses one model; this line uses ", quoted(this_model, 100)), "body.model");
      continue;
    }
    valid.push_back({std::move(custom_id), serialize(body_member->value)});
  }
  if (nonblank == 0) invalid("empty_file", 1, "the file holds no requests", std::nullopt);

  const TimePoint now = clock_();
  {
    std::lock_guard lock(mutex_);
    batch->id = new_id("batch_");
  }
  if (batch->errors.empty()) {
    // Every line answered as the online endpoint answers its body (answer.h).
    batch->lines.reserve(valid.size());
    batch->ok_before.reserve(valid.size() + 1);
    batch->ok_before.push_back(0);
    std::size_t index = 0;
    std::size_t output_bytes = 0;
    for (const Valid& line : valid) {
      std::string line_id = cat(batch->id, "-", std::to_string(index++));
      auto parsed = parse_chat_request(line.body, options_.models);
      Batch::Line out;
      if (const auto* error = std::get_if<ApiError>(&parsed)) {
        out.text = output_line(error->status, error->body(), line.custom_id, line_id);
      } else {
        const ChatRequest& chat = std::get<ChatRequest>(parsed);
        std::uint32_t param = 0;
        auto fault = marker_fault(chat, ledger_, param);
        // The huge faults (huge_error, oversize) test a client's bounds; past kMaxBatchOutput they would
        // only exhaust the simulator, so later lines are answered plainly.
        if ((fault == Fault::kHugeError || fault == Fault::kOversize) && output_bytes > kMaxBatchOutput) {
          fault.reset();
        }
        if (const auto fault_answer = fault ? fault_error(*fault, param, false) : std::nullopt) {
          out.text = output_line(fault_answer->status, fault_answer->body(), line.custom_id, line_id);
        } else {
          const Completion completion = faulted_completion(chat, fault, options_.content_bytes, "");
          out.ok = true;
          out.text = output_line(200, render_body(completion, fault_shape(fault)), line.custom_id, line_id);
        }
      }
      output_bytes += out.text.size();
      batch->ok_before.push_back(batch->ok_before.back() + (out.ok ? 1 : 0));
      batch->lines.push_back(std::move(out));
    }
  }

  std::lock_guard lock(mutex_);
  batch->origin = now;
  batch->created_at = unix_seconds(now);
  batch->expires_at = batch->created_at + 24 * 3600;
  ++batches_created_;
  if (batch->errors.empty()) paid_lines_ += batch->lines.size();
  const std::string id = batch->id;
  batch_order_.push_back(id);
  Batch& stored = *batches_.emplace(id, std::move(batch)).first->second;
  if (lose_answer)
    return error_reply(ApiError{500, "500", "the batch was created; this answer is the fault"});
  return json_reply(200, batch_json(stored));
}

BatchStore::Reply BatchStore::retrieve_batch(std::string_view id) {
  std::lock_guard lock(mutex_);
  const auto it = batches_.find(id);
  if (it == batches_.end()) return error_reply(no_such("batch", id));
  advance(*it->second, clock_());
  return json_reply(200, batch_json(*it->second));
}

BatchStore::Reply BatchStore::list_batches(std::string_view query) {
  const auto limit = query_limit(query, 20, 100);
  if (!limit) return error_reply(api_errors::invalid_field("limit", "an integer from 1 to 100"));
  const auto after = query_value(query, "after");
  std::lock_guard lock(mutex_);
  advance_all(clock_());
  if (after && batches_.find(*after) == batches_.end()) return error_reply(no_such("batch", *after));
  std::string body = R"({"object":"list","data":[)";
  bool started = !after;
  std::size_t written = 0;
  bool has_more = false;
  std::optional<std::string> first_id, last_id;
  for (auto it = batch_order_.rbegin(); it != batch_order_.rend(); ++it) {  // newest first
    if (!started) {
      started = *it == *after;
      continue;
    }
    if (written == *limit) {
      has_more = true;
      break;
    }
    if (written > 0) body += ',';
    body += batch_json(*batches_.at(*it));
    if (!first_id) first_id = *it;
    last_id = *it;
    ++written;
  }
  body += "],";
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  optional_string(writer, "first_id", first_id);
  optional_string(writer, "last_id", last_id);
  key(writer, "has_more");
  writer.Bool(has_more);
  writer.EndObject();
  body.append(buffer.GetString() + 1, buffer.GetSize() - 1);  // the members, without the opening brace
  return json_reply(200, std::move(body));
}

BatchStore::Reply BatchStore::cancel_batch(std::string_view id) {
  std::lock_guard lock(mutex_);
  const auto it = batches_.find(id);
  if (it == batches_.end()) return error_reply(no_such("batch", id));
  Batch& batch = *it->second;
  const TimePoint now = clock_();
  advance(batch, now);
  if (batch.status == "validating" || batch.status == "in_progress") {
    batch.cancel_requested = now;
    batch.cancelling_at = unix_seconds(now);
    batch.status = "cancelling";
    ++batches_cancelled_;
  } else if (batch.status != "cancelling" && batch.status != "cancelled") {
    return error_reply(
        bad_request(cat("batch ", batch.id, " is ", batch.status, " and cannot be cancelled")));
  }
  return json_reply(200, batch_json(batch));
}

// ---- Progress
// -----------------------------------------------------------------------------------------------

// Phases as fractions of --batch-seconds: validating the first tenth, in_progress to nine tenths (lines
// finishing evenly), finalizing the last tenth. A hold clamps the time a batch has had; cancelling lasts a
// tenth.
BatchStore::Pace BatchStore::pace() const {
  Pace p;
  p.total = Millis(static_cast<std::int64_t>(options_.batch_seconds * 1000));
  p.validating_end = p.total / 10;
  p.in_progress_end = p.total * 9 / 10;
  p.midpoint = p.validating_end + (p.in_progress_end - p.validating_end) / 2;
  return p;
}

// The time `batch` has had, a hold's phase stopping it.
std::chrono::milliseconds BatchStore::elapsed(const Batch& batch, TimePoint now) const {
  const Pace p = pace();
  const auto so_far = std::chrono::duration_cast<Millis>(now - batch.origin);
  switch (hold_.load()) {
    case Hold::kValidating:
      return std::min(so_far, Millis(0));
    case Hold::kInProgress:  // half the lines done
      return std::min(so_far, std::max(p.validating_end, p.midpoint - Millis(1)));
    case Hold::kFinalizing:
      return std::min(so_far, p.in_progress_end);
    default:
      return so_far;
  }
}

void BatchStore::advance(Batch& batch, TimePoint now) {
  if (batch.finished) return;
  const Pace p = pace();
  const Millis total_time = p.total;
  const Millis validating_end = p.validating_end;
  const Millis in_progress_end = p.in_progress_end;
  const Millis midpoint = p.midpoint;
  const auto at = [&batch](Millis offset) { return unix_seconds(batch.origin + offset); };

  if (batch.cancel_requested) {
    if (now - *batch.cancel_requested >= total_time / 10) {
      batch.status = "cancelled";
      batch.cancelled_at = unix_seconds(*batch.cancel_requested + total_time / 10);
      finish(batch, *batch.cancelled_at);
    }
    return;
  }

  const Millis so_far = elapsed(batch, now);
  if (total_time > Millis(0) && so_far < validating_end) return;  // validating
  if (!batch.errors.empty()) {
    batch.status = "failed";
    batch.failed_at = at(validating_end);
    finish(batch, *batch.failed_at);
    return;
  }
  if (!batch.in_progress_at) batch.in_progress_at = at(validating_end);
  const std::size_t total = batch.lines.size();
  if (batch.expire && so_far >= midpoint) {
    batch.done = total / 2;
    batch.status = "expired";
    batch.expired_at = at(midpoint);
    finish(batch, *batch.expired_at);
    return;
  }
  if (so_far < in_progress_end) {
    batch.status = "in_progress";
    const auto span = (in_progress_end - validating_end).count();
    const auto into = (so_far - validating_end).count();
    batch.done = span <= 0 ? total
                           : std::min<std::size_t>(
                                 total, static_cast<std::size_t>(static_cast<double>(total) * into / span));
    return;
  }
  batch.done = total;
  if (!batch.finalizing_at) batch.finalizing_at = at(in_progress_end);
  if (so_far < total_time) {
    batch.status = "finalizing";
    return;
  }
  batch.status = "completed";
  batch.completed_at = at(total_time);
  finish(batch, *batch.completed_at);
}

void BatchStore::advance_all(TimePoint now) {
  for (auto& [id, batch] : batches_) advance(*batch, now);
}

// A terminal status: the finished lines become the output and error files; the input goes if asked.
void BatchStore::finish(Batch& batch, std::int64_t at_unix) {
  batch.finished = true;
  std::string output;
  std::string errors;
  for (std::size_t i = 0; i < batch.done && i < batch.lines.size(); ++i) {
    std::string& target = batch.lines[i].ok ? output : errors;
    target.append(batch.lines[i].text).push_back('\n');
  }
  if (!output.empty()) {
    batch.output_file_id = store_file(batch.id + "_output.jsonl", "batch_output", std::move(output), at_unix);
    files_.at(*batch.output_file_id)->drop_once = batch.drop_download;
    if (batch.lose_output) batch.output_file_id = cat("file_lost_", batch.id);  // a 404 to every download
  }
  if (!errors.empty()) {
    batch.error_file_id = store_file(batch.id + "_error.jsonl", "batch_output", std::move(errors), at_unix);
    files_.at(*batch.error_file_id)->drop_once = batch.drop_download;
  }
  std::vector<Batch::Line>().swap(batch.lines);  // the files hold them now
  if (batch.auto_delete_input_file) {
    if (const auto it = files_.find(batch.input_file_id); it != files_.end()) {
      stored_bytes_ -= it->second->content.size();
      if (it->second->purpose == "batch") --uploaded_files_stored_;
      files_.erase(it);
      std::erase(file_order_, batch.input_file_id);
    }
  }
}

std::string BatchStore::batch_json(const Batch& batch) const {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  key(writer, "id");
  string(writer, batch.id);
  key(writer, "object");
  string(writer, "batch");
  key(writer, "endpoint");
  string(writer, batch.endpoint);
  key(writer, "input_file_id");
  string(writer, batch.input_file_id);
  optional_string(writer, "output_file_id", batch.output_file_id);
  optional_string(writer, "error_file_id", batch.error_file_id);
  key(writer, "status");
  string(writer, batch.status);
  key(writer, "created_at");
  writer.Int64(batch.created_at);
  optional_int(writer, "in_progress_at", batch.in_progress_at);
  key(writer, "expires_at");
  writer.Int64(batch.expires_at);
  optional_int(writer, "finalizing_at", batch.finalizing_at);
  optional_int(writer, "completed_at", batch.completed_at);
  optional_int(writer, "failed_at", batch.failed_at);
  optional_int(writer, "expired_at", batch.expired_at);
  optional_int(writer, "cancelling_at", batch.cancelling_at);
  optional_int(writer, "cancelled_at", batch.cancelled_at);
  key(writer, "request_counts");
  writer.StartObject();
  const std::size_t total =
      batch.errors.empty() ? batch.ok_before.size() - (batch.ok_before.empty() ? 0 : 1) : 0;
  const std::size_t done = std::min(batch.done, total);
  const std::size_t ok = total == 0 ? 0 : batch.ok_before[done];
  key(writer, "total");
  writer.Uint64(total);
  key(writer, "completed");
  writer.Uint64(ok);
  key(writer, "failed");
  writer.Uint64(done - ok);
  writer.EndObject();
  key(writer, "errors");
  if (batch.errors.empty()) {
    writer.Null();
  } else {
    writer.StartObject();
    key(writer, "object");
    string(writer, "list");
    key(writer, "data");
    writer.StartArray();
    for (const auto& e : batch.errors) {
      writer.StartObject();
      key(writer, "code");
      string(writer, e.code);
      key(writer, "line");
      writer.Uint64(e.line);
      key(writer, "message");
      string(writer, e.message);
      optional_string(writer, "param", e.param);
      writer.EndObject();
    }
    writer.EndArray();
    writer.EndObject();
  }
  key(writer, "metadata");
  writer.RawValue(batch.metadata.data(), batch.metadata.size(), rapidjson::kObjectType);
  writer.EndObject();
  return take(buffer);
}

// ---- Holds and stats
// ----------------------------------------------------------------------------------------

void BatchStore::hold(std::string_view phase) {
  const auto found = std::find(kHoldPhases.begin(), kHoldPhases.end(), phase);
  if (found == kHoldPhases.end()) {
    throw std::invalid_argument(cat("unknown batch hold phase '", quoted(phase, 64), "'"));
  }
  const Hold next = static_cast<Hold>(found - kHoldPhases.begin());
  std::lock_guard lock(mutex_);
  // Time spent held does not count: each batch's clock restarts where the hold stopped it.
  const TimePoint now = clock_();
  if (hold_.load() != Hold::kNone) {
    for (auto& [id, batch] : batches_) {
      if (batch->finished || batch->cancel_requested) continue;
      advance(*batch, now);
      if (batch->finished) continue;
      batch->origin = now - elapsed(*batch, now);
    }
  }
  hold_.store(next);
}

void BatchStore::release() {
  hold("none");
}

std::string BatchStore::stats_json() {
  std::lock_guard lock(mutex_);
  advance_all(clock_());
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  for (const auto& [name, value] :
       {std::pair{"files_uploaded", files_uploaded_}, std::pair{"bytes_uploaded", bytes_uploaded_},
        std::pair{"lines_uploaded", lines_uploaded_}, std::pair{"batches_created", batches_created_},
        std::pair{"paid_lines", paid_lines_}, std::pair{"batches_cancelled", batches_cancelled_},
        std::pair{"content_downloads", content_downloads_}}) {
    key(writer, name);
    writer.Uint64(value);
  }
  key(writer, "uploads_in_progress");
  writer.Int64(uploads_in_progress_.load(std::memory_order_relaxed));
  key(writer, "uploads_held");
  writer.Int64(uploads_held_.load(std::memory_order_relaxed));
  key(writer, "downloads_in_progress");
  writer.Int64(downloads_in_progress_.load(std::memory_order_relaxed));
  key(writer, "files_stored");
  writer.Uint64(files_.size());
  key(writer, "hold");
  string(writer, kHoldPhases[static_cast<std::size_t>(hold_.load())]);
  std::map<std::string, std::uint64_t> by_status;
  for (const auto& [id, batch] : batches_) ++by_status[batch->status];
  key(writer, "batches_by_status");
  writer.StartObject();
  for (const auto& [status, n] : by_status) {
    key(writer, status);
    writer.Uint64(n);
  }
  writer.EndObject();
  writer.EndObject();
  return take(buffer);
}

void BatchStore::reset_stats() {
  std::lock_guard lock(mutex_);
  files_uploaded_ = bytes_uploaded_ = lines_uploaded_ = batches_created_ = paid_lines_ = batches_cancelled_ =
      content_downloads_ = 0;
}

}  // namespace simulator
