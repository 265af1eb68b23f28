#include "worker_config.hpp"

#include "json_reader.hpp"

namespace cbm {
namespace {

using std::chrono::milliseconds;

}  // namespace

std::string encode_worker_config(const WorkerConfig& c) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  write_key_string(w, "base_url", c.client.base_url);
  w.Key("stream");
  w.Bool(c.client.stream);
  w.Key("connect_timeout_ms");
  w.Int64(c.client.http.connect_timeout.count());
  w.Key("low_speed_time_s");
  w.Int64(c.client.http.low_speed_time.count());
  w.Key("max_body_bytes");
  w.Uint64(c.client.http.max_body_bytes);
  w.Key("attempt_timeout_ms");
  w.Int64(c.attempt_timeout.count());
  w.Key("trace");
  w.Bool(c.trace);
  w.Key("attempts");
  w.Int(c.attempts);
  write_key_string(w, "tool_model", c.pipeline.tool_model);
  write_key_string(w, "chat_model", c.pipeline.chat_model);
  w.Key("search");
  w.Bool(c.pipeline.search);
  write_key_string(w, "api_flavor", to_string(c.client.flavor));
  write_key_string(w, "accept_language", c.client.accept_language);
  const ModelSettings& m = c.pipeline.model;
  w.Key("temperature");
  w.Double(m.temperature);
  w.Key("top_p");
  w.Double(m.top_p);
  w.Key("max_tokens");
  w.Int(m.max_tokens);
  write_key_string(w, "thinking", to_string(m.thinking));
  write_key_string(w, "response_format", to_string(m.response_format));
  w.Key("keep_reasoning");
  w.Bool(c.pipeline.keep_reasoning);
  const SearchSettings& search = c.pipeline.search_settings;
  write_key_string(w, "search_via", to_string(c.pipeline.search_via));
  write_key_string(w, "search_engine", search.engine);
  write_key_string(w, "search_recency", search.recency);
  write_key_string(w, "search_domain", search.domain);
  w.Key("search_count");
  w.Int(search.count);
  write_key_string(w, "search_content_size", search.content_size);
  write_key_string(w, "search_system", c.pipeline.prompts.search_system.source());
  write_key_string(w, "search_user", c.pipeline.prompts.search_user.source());
  write_key_string(w, "analysis_system", c.pipeline.prompts.analysis_system.source());
  write_key_string(w, "analysis_user", c.pipeline.prompts.analysis_user.source());
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

Result<WorkerConfig, DecodeError> decode_worker_config(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) return Err{DecodeError{"worker config: not a JSON object"}};
  std::string error;
  JsonReader r(doc, "", error);
  WorkerConfig c;
  std::int64_t connect_ms = c.client.http.connect_timeout.count();
  std::int64_t low_speed_s = c.client.http.low_speed_time.count();
  std::int64_t max_body = static_cast<std::int64_t>(c.client.http.max_body_bytes);
  std::int64_t timeout_ms = c.attempt_timeout.count();
  r.string("base_url", c.client.base_url);
  r.boolean("stream", c.client.stream);
  r.integer("connect_timeout_ms", connect_ms);
  r.integer("low_speed_time_s", low_speed_s);
  r.integer("max_body_bytes", max_body);
  r.integer("attempt_timeout_ms", timeout_ms);
  r.boolean("trace", c.trace);
  r.integer("attempts", c.attempts);
  if (c.attempts < 1 || c.attempts > WorkerConfig::kMaxAttempts) r.fail("attempts", "out of range");
  r.string("tool_model", c.pipeline.tool_model);
  r.string("chat_model", c.pipeline.chat_model);
  r.boolean("search", c.pipeline.search);
  // The enums by name: an unknown one is refused, not defaulted.
  const auto named = [&r](const char* name, auto& out, auto from_string) {
    std::string text(to_string(out));
    r.string(name, text);
    if (auto value = from_string(text)) {
      out = *value;
    } else {
      r.fail(name, "unknown value '" + text + "'");
    }
  };
  named("api_flavor", c.client.flavor, api_flavor_from_string);
  r.string("accept_language", c.client.accept_language);
  ModelSettings& m = c.pipeline.model;
  r.number("temperature", m.temperature);
  r.number("top_p", m.top_p);
  r.integer("max_tokens", m.max_tokens);
  named("thinking", m.thinking, thinking_from_string);
  named("response_format", m.response_format, response_format_from_string);
  r.boolean("keep_reasoning", c.pipeline.keep_reasoning);
  SearchSettings& search = c.pipeline.search_settings;
  named("search_via", c.pipeline.search_via, search_via_from_string);
  r.string("search_engine", search.engine);
  r.string("search_recency", search.recency);
  r.string("search_domain", search.domain);
  r.integer("search_count", search.count);
  r.string("search_content_size", search.content_size);
  const std::pair<const char*, PromptTemplate PromptSet::*> prompts[] = {
      {"search_system", &PromptSet::search_system},
      {"search_user", &PromptSet::search_user},
      {"analysis_system", &PromptSet::analysis_system},
      {"analysis_user", &PromptSet::analysis_user},
  };
  for (const auto& [name, member] : prompts) {
    std::string text = (c.pipeline.prompts.*member).source();
    r.string(name, text);
    auto parsed = PromptTemplate::parse(text);
    if (!parsed) {
      r.fail(name, parsed.error().message);
    } else {
      c.pipeline.prompts.*member = std::move(parsed.value());
    }
  }
  if (!error.empty()) return Err{DecodeError{"worker config: " + error}};
  c.client.http.connect_timeout = milliseconds(connect_ms);
  c.client.http.low_speed_time = std::chrono::seconds(low_speed_s);
  c.client.http.max_body_bytes = static_cast<std::size_t>(max_body);
  c.attempt_timeout = milliseconds(timeout_ms);
  return c;
}

}  // namespace cbm
