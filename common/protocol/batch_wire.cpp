#include "batch_wire.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "bounded_json.hpp"
#include "json_reader.hpp"

namespace cbm {
namespace {

// A batch or file object is small; a list holds at most 100 of them (the documented page size).
constexpr JsonBounds kObjectBounds{16, 20000};
constexpr std::size_t kMaxObjectBytes = 4u << 20;
constexpr std::size_t kMaxErrors = 1000;  // errors.data entries kept
constexpr std::size_t kMaxMetadata = 64;

void append_json_string(std::string& out, std::string_view s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  out.append(buf.GetString(), buf.GetSize());
}

std::optional<std::string> parse_object_text(rapidjson::Document& doc, std::string_view text) {
  if (text.size() > kMaxObjectBytes) return "larger than " + std::to_string(kMaxObjectBytes) + " bytes";
  if (auto problem = parse_bounded(doc, text, kObjectBounds)) return problem;
  if (!doc.IsObject()) return std::string("not a JSON object");
  return std::nullopt;
}

// A string member that may come as a number (codes are strings in real bodies, integers in a spec).
void string_or_number(const rapidjson::Value& obj, const char* name, std::string& out) {
  const auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) return;
  if (it->value.IsString()) out.assign(it->value.GetString(), it->value.GetStringLength());
  if (it->value.IsInt64()) out = std::to_string(it->value.GetInt64());
}

std::optional<std::string> read_batch(const rapidjson::Value& v, const std::string& path, BatchObject& b) {
  if (!v.IsObject()) return path + ": expected object";
  std::string error;
  JsonReader r(v, path, error);
  r.string("id", b.id);
  r.string("status", b.status);
  r.string("input_file_id", b.input_file_id);
  r.string("output_file_id", b.output_file_id);
  r.string("error_file_id", b.error_file_id);
  if (const auto* counts = r.object("request_counts")) {
    JsonReader c(*counts, r.child_path("request_counts"), error);
    c.integer("total", b.request_counts.total);
    c.integer("completed", b.request_counts.completed);
    c.integer("failed", b.request_counts.failed);
  }
  if (const auto* errors = r.object("errors")) {
    JsonReader e(*errors, r.child_path("errors"), error);
    if (const auto* data = e.array("data")) {
      for (rapidjson::SizeType i = 0; i < data->Size() && b.errors.size() < kMaxErrors; ++i) {
        const auto& item = (*data)[i];
        if (!item.IsObject()) continue;
        BatchLineError le;
        string_or_number(item, "code", le.code);
        JsonReader ir(item, e.element_path("data", i), error);
        ir.integer("line", le.line);
        ir.string("message", le.message);
        b.errors.push_back(std::move(le));
      }
    }
  }
  if (const auto* metadata = r.object("metadata")) {
    for (auto it = metadata->MemberBegin(); it != metadata->MemberEnd() && b.metadata.size() < kMaxMetadata; ++it) {
      if (!it->value.IsString()) continue;
      b.metadata.emplace(std::string(it->name.GetString(), it->name.GetStringLength()),
                         std::string(it->value.GetString(), it->value.GetStringLength()));
    }
  }
  if (error.empty() && b.id.empty()) error = path.empty() ? "id: missing" : path + ".id: missing";
  if (error.empty() && b.status.empty()) error = path.empty() ? "status: missing" : path + ".status: missing";
  if (!error.empty()) return error;
  return std::nullopt;
}

std::optional<std::string> read_file(const rapidjson::Value& v, const std::string& path, FileObject& f) {
  if (!v.IsObject()) return path + ": expected object";
  std::string error;
  JsonReader r(v, path, error);
  r.string("id", f.id);
  r.string("filename", f.filename);
  r.string("purpose", f.purpose);
  if (error.empty() && f.id.empty()) error = path.empty() ? "id: missing" : path + ".id: missing";
  if (!error.empty()) return error;
  return std::nullopt;
}

template <typename T, typename Read>
Result<ListPage<T>, std::string> parse_list(std::string_view text, Read read) {
  rapidjson::Document doc;
  if (auto problem = parse_object_text(doc, text)) return Err{*problem};
  ListPage<T> page;
  std::string error;
  JsonReader r(doc, "", error);
  r.boolean("has_more", page.has_more);
  r.string("last_id", page.last_id);
  const auto* data = r.array("data");
  if (!error.empty()) return Err{error};
  if (data == nullptr) return Err{std::string("data: missing")};
  for (rapidjson::SizeType i = 0; i < data->Size(); ++i) {
    T item;
    if (auto problem = read((*data)[i], r.element_path("data", i), item)) return Err{*problem};
    page.data.push_back(std::move(item));
  }
  return page;
}

}  // namespace

std::string batch_request_line(std::string_view custom_id, std::string_view body) {
  std::string line = "{\"custom_id\":";
  append_json_string(line, custom_id);
  line += ",\"method\":\"POST\",\"url\":";
  append_json_string(line, kBatchEndpoint);
  line += ",\"body\":";
  line += body;
  line += "}\n";
  return line;
}

bool BatchObject::ended() const {
  return status == "completed" || status == "failed" || status == "expired" || status == "cancelled";
}

Result<BatchObject, std::string> parse_batch_object(std::string_view text) {
  rapidjson::Document doc;
  if (auto problem = parse_object_text(doc, text)) return Err{*problem};
  BatchObject b;
  if (auto problem = read_batch(doc, "", b)) return Err{*problem};
  return b;
}

Result<FileObject, std::string> parse_file_object(std::string_view text) {
  rapidjson::Document doc;
  if (auto problem = parse_object_text(doc, text)) return Err{*problem};
  FileObject f;
  if (auto problem = read_file(doc, "", f)) return Err{*problem};
  return f;
}

Result<ListPage<BatchObject>, std::string> parse_batch_list(std::string_view text) {
  return parse_list<BatchObject>(text, read_batch);
}

Result<ListPage<FileObject>, std::string> parse_file_list(std::string_view text) {
  return parse_list<FileObject>(text, read_file);
}

Result<BatchOutputLine, std::string> parse_batch_output_line(std::string_view line) {
  if (line.size() > kBatchMaxOutputLine) {
    return Err{"a line longer than " + std::to_string(kBatchMaxOutputLine) + " bytes"};
  }
  rapidjson::Document doc;
  if (auto problem = parse_bounded(doc, line, JsonBounds{})) return Err{*problem};
  if (!doc.IsObject()) return Err{std::string("not a JSON object")};
  BatchOutputLine out;
  std::string error;
  JsonReader r(doc, "", error);
  r.string("custom_id", out.custom_id);
  const rapidjson::Value* body = nullptr;
  if (const auto* response = r.object("response")) {
    JsonReader rr(*response, "response", error);
    std::int64_t status = 0;
    rr.integer("status_code", status);
    out.status_code = static_cast<long>(status);
    const auto it = response->FindMember("body");
    if (it != response->MemberEnd()) body = &it->value;
  } else {
    // An error-file line in another envelope: its top-level `error` is the body's.
    const auto it = doc.FindMember("error");
    if (it != doc.MemberEnd() && it->value.IsObject()) body = &doc;
  }
  if (!error.empty()) return Err{error};
  if (out.custom_id.empty()) return Err{std::string("custom_id: missing")};
  if (body == nullptr) return Err{std::string("response.body: missing")};
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  body->Accept(w);
  out.body.assign(buf.GetString(), buf.GetSize());
  return out;
}

namespace {

// The custom_id whose key starts at `at` in `text`, if its whole value is there.
std::optional<std::string> custom_id_value(std::string_view text, std::size_t at) {
  constexpr std::string_view kKey = "\"custom_id\"";
  std::size_t i = at + kKey.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  if (i >= text.size() || text[i] != ':') return std::nullopt;
  ++i;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  if (i >= text.size() || text[i] != '"') return std::nullopt;
  const std::size_t start = i + 1;
  const std::size_t end = text.find('"', start);
  if (end == std::string_view::npos || end == start || end - start > 256) return std::nullopt;
  const std::string_view value = text.substr(start, end - start);
  if (value.find('\\') != std::string_view::npos) return std::nullopt;
  return std::string(value);
}

}  // namespace

std::optional<std::string> custom_id_at_edges(std::string_view head, std::string_view tail) {
  constexpr std::string_view kKey = "\"custom_id\"";
  for (std::size_t at = head.find(kKey); at != std::string_view::npos; at = head.find(kKey, at + 1)) {
    if (auto id = custom_id_value(head, at)) return id;
  }
  for (std::size_t at = tail.rfind(kKey); at != std::string_view::npos;
       at = at == 0 ? std::string_view::npos : tail.rfind(kKey, at - 1)) {
    if (auto id = custom_id_value(tail, at)) return id;
  }
  return std::nullopt;
}

}  // namespace cbm
