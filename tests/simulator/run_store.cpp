#include "run_store.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

namespace simulator {
namespace {

using rapidjson::Value;

constexpr std::size_t kUuidLength = 36;
constexpr std::size_t kStampLength = 22;  // 20250102T030405123456Z
constexpr std::array<std::string_view, 7> kRunTypes = {"chain",     "llm",    "tool",  "retriever",
                                                       "embedding", "prompt", "parser"};

std::string_view view(const Value& string) { return {string.GetString(), string.GetStringLength()}; }

const Value* member(const Value& object, const char* name) {
  const auto it = object.FindMember(name);
  return it == object.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}

std::optional<std::string_view> string_member(const Value& object, const char* name) {
  const Value* v = member(object, name);
  if (v == nullptr || !v->IsString()) return std::nullopt;
  return view(*v);
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int number(std::string_view digits) {
  int n = 0;
  for (char c : digits) n = n * 10 + (c - '0');
  return n;
}

bool is_uuid(std::string_view s) {
  if (s.size() != kUuidLength) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + doe - 719468;
}

std::optional<std::int64_t> micros_of(int y, int mo, int d, int h, int mi, int s, std::int64_t us) {
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60'000'000 + s * 1'000'000LL + us;
}

// YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) as microseconds since the epoch, UTC.
std::optional<std::int64_t> parse_iso8601(std::string_view t) {
  if (t.size() < 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  for (std::size_t at : {0, 5, 8, 11, 14, 17}) {
    if (!all_digits(t.substr(at, at == 0 ? 4 : 2))) return std::nullopt;
  }
  std::string_view rest = t.substr(19);
  std::int64_t us = 0;
  if (rest.starts_with('.')) {
    const std::size_t n = std::min(rest.find_first_not_of("0123456789", 1), rest.size());
    if (n < 2) return std::nullopt;
    std::string fraction(rest.substr(1, std::min<std::size_t>(n - 1, 6)));
    fraction.resize(6, '0');
    us = number(fraction);
    rest.remove_prefix(n);
  }
  std::int64_t offset_minutes = 0;
  if (rest != "Z") {
    const bool offset = rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
                        all_digits(rest.substr(1, 2)) && all_digits(rest.substr(4, 2));
    if (!offset) return std::nullopt;  // no zone, or a malformed one
    offset_minutes = (rest[0] == '-' ? -1 : 1) * (number(rest.substr(1, 2)) * 60 + number(rest.substr(4, 2)));
  }
  const auto local = micros_of(number(t.substr(0, 4)), number(t.substr(5, 2)), number(t.substr(8, 2)),
                               number(t.substr(11, 2)), number(t.substr(14, 2)), number(t.substr(17, 2)), us);
  if (!local) return std::nullopt;
  return *local - offset_minutes * 60'000'000;
}

// 20250102T030405123456Z as microseconds since the epoch.
std::optional<std::int64_t> parse_stamp(std::string_view s) {
  if (s.size() != kStampLength || s[8] != 'T' || s[21] != 'Z' || !all_digits(s.substr(0, 8)) ||
      !all_digits(s.substr(9, 12))) {
    return std::nullopt;
  }
  return micros_of(number(s.substr(0, 4)), number(s.substr(4, 2)), number(s.substr(6, 2)), number(s.substr(9, 2)),
                   number(s.substr(11, 2)), number(s.substr(13, 2)), number(s.substr(15, 6)));
}

struct Segment {
  std::string_view stamp;
  std::string_view id;
};

// The segments of a dotted_order; empty when any is malformed.
std::vector<Segment> parse_dotted_order(std::string_view order) {
  std::vector<Segment> segments;
  for (;;) {
    const std::size_t dot = order.find('.');
    const std::string_view part = order.substr(0, dot);
    if (part.size() != kStampLength + kUuidLength || !parse_stamp(part.substr(0, kStampLength)) ||
        !is_uuid(part.substr(kStampLength))) {
      return {};
    }
    segments.push_back({part.substr(0, kStampLength), part.substr(kStampLength)});
    if (dot == std::string_view::npos) return segments;
    order.remove_prefix(dot + 1);
  }
}

std::string check_time(const Value& run, const char* name, std::optional<std::int64_t>& out) {
  const Value* v = member(run, name);
  if (v == nullptr) return {};
  if (!v->IsString()) return std::string(name) + " must be a string";
  out = parse_iso8601(view(*v));
  if (!out) return std::string(name) + " '" + std::string(view(*v)) + "' is not ISO-8601 with a time zone";
  return {};
}

std::string check_optional_types(const Value& run) {
  for (const char* name : {"inputs", "outputs", "extra"}) {
    const Value* v = member(run, name);
    if (v != nullptr && !v->IsObject()) return std::string(name) + " must be an object";
  }
  const Value* error = member(run, "error");
  if (error != nullptr && !error->IsString()) return "error must be a string";
  return {};
}

std::string detail_prefix(const Value& run) {
  const auto id = string_member(run, "id");
  return "run " + (id ? std::string(*id) : std::string("(no id)")) + ": ";
}

}  // namespace

const Value* RunStore::stored(std::string_view id) const {
  const auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : &it->second;
}

std::string RunStore::check_post(const Value& run,
                                 const std::map<std::string, const Value*, std::less<>>& batch) const {
  if (!run.IsObject()) return "a post must be an object";
  const auto id = string_member(run, "id");
  const auto trace_id = string_member(run, "trace_id");
  const auto dotted_order = string_member(run, "dotted_order");
  if (!id || !is_uuid(*id)) return "id must be a UUID";
  if (!trace_id || !is_uuid(*trace_id)) return "trace_id must be a UUID";
  if (!dotted_order) return "dotted_order is missing";
  const auto segments = parse_dotted_order(*dotted_order);
  if (segments.empty()) return "dotted_order '" + std::string(*dotted_order) + "' is malformed";
  if (segments.back().id != *id) return "dotted_order does not end with the run's id";
  if (segments.front().id != *trace_id) return "dotted_order does not start with the trace_id";

  const auto name = string_member(run, "name");
  if (!name || name->empty()) return "name is missing";
  const auto run_type = string_member(run, "run_type");
  if (!run_type || std::find(kRunTypes.begin(), kRunTypes.end(), *run_type) == kRunTypes.end()) {
    return "run_type must be one of chain, llm, tool, retriever, embedding, prompt, parser";
  }
  const auto session = string_member(run, "session_name");
  if (!session || session->empty()) return "session_name is missing";
  std::optional<std::int64_t> start;
  std::optional<std::int64_t> end;
  if (auto e = check_time(run, "start_time", start); !e.empty()) return e;
  if (!start) return "start_time is missing";
  if (auto e = check_time(run, "end_time", end); !e.empty()) return e;
  if (end && *end < *start) return "end_time is before start_time";
  if (parse_stamp(segments.back().stamp) != start) return "the dotted_order's last stamp is not the start_time";
  if (auto e = check_optional_types(run); !e.empty()) return e;

  const auto parent_id = string_member(run, "parent_run_id");
  if (segments.size() == 1) {
    if (parent_id) return "a root (one dotted_order segment) has a parent_run_id";
    if (*trace_id != *id) return "a root's trace_id must be its own id";
    return {};
  }
  if (!parent_id) return "a child (several dotted_order segments) has no parent_run_id";
  const Value* parent = nullptr;
  if (const auto it = batch.find(*parent_id); it != batch.end()) parent = it->second;
  if (parent == nullptr) parent = stored(*parent_id);
  if (parent == nullptr) return "parent " + std::string(*parent_id) + " was never posted";
  const auto parent_order = string_member(*parent, "dotted_order");
  const auto parent_trace = string_member(*parent, "trace_id");
  if (!parent_order || !dotted_order->starts_with(std::string(*parent_order) + ".") ||
      dotted_order->size() != parent_order->size() + 1 + kStampLength + kUuidLength) {
    return "dotted_order is not the parent's dotted_order plus one segment";
  }
  if (parent_trace != trace_id) return "trace_id differs from the parent's";
  if (segments.back().stamp < segments[segments.size() - 2].stamp) return "the child starts before its parent";
  return {};
}

std::string RunStore::check_patch(const Value& run,
                                  const std::map<std::string, const Value*, std::less<>>& batch) const {
  if (!run.IsObject()) return "a patch must be an object";
  const auto id = string_member(run, "id");
  if (!id || !is_uuid(*id)) return "id must be a UUID";
  const Value* post = nullptr;
  if (const auto it = batch.find(*id); it != batch.end()) post = it->second;
  if (post == nullptr) post = stored(*id);
  if (post == nullptr) return "patch of a run never posted";
  for (const char* name : {"trace_id", "dotted_order", "parent_run_id"}) {
    const auto given = string_member(run, name);
    if (given && given != string_member(*post, name)) return std::string(name) + " differs from the post's";
  }
  std::optional<std::int64_t> start;
  std::optional<std::int64_t> end;
  check_time(*post, "start_time", start);
  if (auto e = check_time(run, "end_time", end); !e.empty()) return e;
  if (end && start && *end < *start) return "end_time is before start_time";
  return check_optional_types(run);
}

RunStore::Answer RunStore::ingest(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  std::lock_guard lock(mutex_);
  auto refuse = [this](std::string why) {
    ++rejected_;
    rejections_.push_back(why);
    return Answer{Verdict::kInvalid, std::move(why)};
  };
  if (doc.HasParseError() || !doc.IsObject()) return refuse("the body is not a JSON object");
  static const Value kEmpty(rapidjson::kArrayType);
  const Value* posts = member(doc, "post");
  const Value* patches = member(doc, "patch");
  if ((posts != nullptr && !posts->IsArray()) || (patches != nullptr && !patches->IsArray())) {
    return refuse("post and patch must be arrays");
  }
  if (posts == nullptr) posts = &kEmpty;
  if (patches == nullptr) patches = &kEmpty;

  std::map<std::string, const Value*, std::less<>> batch;
  bool duplicate = false;
  for (const auto& run : posts->GetArray()) {
    const auto id = run.IsObject() ? string_member(run, "id") : std::nullopt;
    if (!id) continue;  // check_post says why
    if (stored(*id) != nullptr) duplicate = true;
    if (!batch.emplace(std::string(*id), &run).second) return refuse("run " + std::string(*id) + " posted twice");
  }
  if (duplicate) return {Verdict::kDuplicate, "a posted run is already stored"};
  for (const auto& run : posts->GetArray()) {
    if (auto why = check_post(run, batch); !why.empty()) return refuse(detail_prefix(run) + why);
  }
  for (const auto& run : patches->GetArray()) {
    if (auto why = check_patch(run, batch); !why.empty()) return refuse(detail_prefix(run) + why);
  }

  auto& allocator = arena_.GetAllocator();
  for (const auto& run : posts->GetArray()) {
    std::string id(view(run["id"]));
    runs_.emplace(id, Value(run, allocator));
    order_.push_back(std::move(id));
  }
  for (const auto& patch : patches->GetArray()) {
    Value& target = runs_.find(view(patch["id"]))->second;
    for (const auto& field : patch.GetObject()) {
      Value value(field.value, allocator);
      if (auto it = target.FindMember(field.name); it != target.MemberEnd()) {
        it->value = std::move(value);
      } else {
        target.AddMember(Value(field.name, allocator), std::move(value), allocator);
      }
    }
  }
  ++batches_;
  return {Verdict::kAccepted, {}};
}

std::string RunStore::to_json() const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  std::lock_guard lock(mutex_);
  writer.StartObject();
  writer.Key("runs");
  writer.StartArray();
  for (const auto& id : order_) runs_.find(id)->second.Accept(writer);
  writer.EndArray();
  writer.Key("batches");
  writer.Uint64(batches_);
  writer.Key("rejected");
  writer.Uint64(rejected_);
  writer.Key("rejections");
  writer.StartArray();
  for (const auto& why : rejections_) writer.String(why.c_str(), static_cast<rapidjson::SizeType>(why.size()));
  writer.EndArray();
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace simulator
