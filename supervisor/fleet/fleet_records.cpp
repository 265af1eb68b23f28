#include "fleet_records.hpp"

#include <charconv>

#include "bounded_json.hpp"
#include "result_codec.hpp"
#include "topic_rules.hpp"

namespace cbm::fleet {

std::optional<FleetTask> task_of_entry(const redis::Reply& entry, std::string& why) {
  try {
    FleetTask t;
    t.entry = entry.at(0).as_string();
    const auto& kv = entry.at(1).as_array();
    std::optional<std::string> id, topic, fields;
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
      const std::string& k = kv[i].as_string();
      if (k == "id") id = kv[i + 1].as_string();
      else if (k == "topic") topic = kv[i + 1].as_string();
      else if (k == "fields") fields = kv[i + 1].as_string();
    }
    if (!id || !topic) {
      why = "an entry without id or topic";
      return std::nullopt;
    }
    const auto [p, ec] = std::from_chars(id->data(), id->data() + id->size(), t.id);
    if (ec != std::errc() || p != id->data() + id->size()) {
      why = "an entry whose id is not a number";
      return std::nullopt;
    }
    // The topic rules of a local run's input (a submit wrote it by them; anything else is refused).
    auto checked = checked_topic(std::move(*topic));
    if (!checked) {
      why = "an entry whose topic " + checked.error().what;
      return std::nullopt;
    }
    t.topic = std::move(checked).value();
    if (fields && *fields != "[]") {
      rapidjson::Document d;
      if (auto problem = parse_bounded(d, *fields, JsonBounds{3, 10000})) {
        why = "an entry whose fields are not JSON: " + *problem;
        return std::nullopt;
      }
      if (!d.IsArray()) {
        why = "an entry whose fields are not a list";
        return std::nullopt;
      }
      for (const auto& f : d.GetArray()) {
        if (!f.IsArray() || f.Size() != 2 || !f[0].IsString() || !f[1].IsString()) {
          why = "an entry whose fields are not [name, value] pairs";
          return std::nullopt;
        }
        t.fields.push_back(Field{std::string(f[0].GetString(), f[0].GetStringLength()),
                                 std::string(f[1].GetString(), f[1].GetStringLength())});
      }
    }
    return t;
  } catch (const redis::ProtocolError& e) {
    why = e.what();
    return std::nullopt;
  }
}

std::optional<TaskResult> decode_result_record(std::string_view json, std::string& why) {
  rapidjson::Document d;
  if (auto problem = parse_bounded(d, json, JsonBounds{16, 200000})) {
    why = *problem;
    return std::nullopt;
  }
  auto r = decode_task_result(d);
  if (!r) {
    why = r.error().message;
    return std::nullopt;
  }
  return std::move(r.value());
}

}  // namespace cbm::fleet
