#include "batch_record.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <map>

namespace cbm {
namespace {

std::optional<BatchState> state_from(std::string_view s) {
  for (const auto st : {BatchState::file_uploading, BatchState::uploaded, BatchState::created, BatchState::abandoned}) {
    if (to_string(st) == s) return st;
  }
  return std::nullopt;
}

std::string string_member(const rapidjson::Value& o, const char* name) {
  const auto it = o.FindMember(name);
  if (it == o.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

}  // namespace

std::string_view to_string(BatchState s) {
  switch (s) {
    case BatchState::file_uploading:
      return "file_uploading";
    case BatchState::uploaded:
      return "uploaded";
    case BatchState::created:
      return "created";
    case BatchState::abandoned:
      return "abandoned";
  }
  return "?";
}

std::string encode_batch_record(const BatchRecord& r) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto key_string = [&](const char* key, std::string_view value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  w.StartObject();
  w.Key("batch");
  w.StartObject();
  key_string("token", r.token);
  w.Key("seq");
  w.Uint64(r.seq);
  key_string("state", to_string(r.state));
  if (!r.file.empty()) key_string("file", r.file);
  if (!r.model.empty()) key_string("model", r.model);
  if (r.state == BatchState::file_uploading) {
    w.Key("custom_ids");
    w.StartArray();
    for (const auto& id : r.custom_ids) w.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
    w.EndArray();
  }
  if (!r.file_id.empty()) key_string("file_id", r.file_id);
  if (!r.batch_id.empty()) key_string("batch_id", r.batch_id);
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::optional<BatchRecord> decode_batch_record(std::string_view line) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(line.data(), line.size());
  if (d.HasParseError() || !d.IsObject()) return std::nullopt;
  const auto b = d.FindMember("batch");
  if (b == d.MemberEnd() || !b->value.IsObject()) return std::nullopt;
  const rapidjson::Value& o = b->value;
  BatchRecord r;
  r.token = string_member(o, "token");
  const auto seq = o.FindMember("seq");
  if (r.token.empty() || seq == o.MemberEnd() || !seq->value.IsUint64()) return std::nullopt;
  r.seq = seq->value.GetUint64();
  const auto state = state_from(string_member(o, "state"));
  if (!state) return std::nullopt;
  r.state = *state;
  r.file = string_member(o, "file");
  r.model = string_member(o, "model");
  r.file_id = string_member(o, "file_id");
  r.batch_id = string_member(o, "batch_id");
  const auto ids = o.FindMember("custom_ids");
  if (ids != o.MemberEnd() && ids->value.IsArray()) {
    for (const auto& id : ids->value.GetArray()) {
      if (id.IsString()) r.custom_ids.emplace_back(id.GetString(), id.GetStringLength());
    }
  }
  return r;
}

std::string batch_custom_id(std::uint32_t round, std::uint64_t id) {
  std::string text = std::to_string(round);
  text += '-';
  text += std::to_string(id);
  return text;
}

std::optional<std::pair<std::uint32_t, std::uint64_t>> parse_batch_custom_id(std::string_view custom_id) {
  const std::size_t dash = custom_id.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::uint32_t round = 0;
  std::uint64_t id = 0;
  const char* const end = custom_id.data() + custom_id.size();
  const auto r = std::from_chars(custom_id.data(), custom_id.data() + dash, round);
  const auto i = std::from_chars(custom_id.data() + dash + 1, end, id);
  if (r.ec != std::errc{} || r.ptr != custom_id.data() + dash || i.ec != std::errc{} || i.ptr != end) {
    return std::nullopt;
  }
  return std::make_pair(round, id);
}

std::vector<RestoredBatch> fold_batch_records(const std::vector<std::string>& lines) {
  std::vector<RestoredBatch> out;
  std::map<std::pair<std::string, std::uint64_t>, std::size_t> index;  // (token, seq) -> its entry in out
  for (const auto& line : lines) {
    auto r = decode_batch_record(line);
    if (!r) continue;
    const auto [at, added] = index.try_emplace({r->token, r->seq}, out.size());
    if (added) out.emplace_back();
    RestoredBatch& b = out[at->second];
    b.token = r->token;
    b.seq = r->seq;
    switch (r->state) {
      case BatchState::file_uploading:
        b.file = std::move(r->file);
        b.model = std::move(r->model);
        b.custom_ids = std::move(r->custom_ids);
        break;
      case BatchState::uploaded:
        b.file_id = std::move(r->file_id);
        break;
      case BatchState::created:
        // The batch exists after all (found by its metadata after a create whose answer was lost).
        b.batch_id = std::move(r->batch_id);
        b.abandoned = false;
        break;
      case BatchState::abandoned:
        b.abandoned = true;
        break;
    }
  }
  return out;
}

}  // namespace cbm
