#include "request_builder.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace cbm {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void str(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// The search filters, the same in the web_search tool and the Web Search API.
void write_search_settings(Writer& w, const SearchSettings& s) {
  w.Key("search_engine");
  str(w, s.engine);
  w.Key("count");
  w.Int(s.count);
  w.Key("search_recency_filter");
  str(w, s.recency);
  if (!s.domain.empty()) {
    w.Key("search_domain_filter");
    str(w, s.domain);
  }
  w.Key("content_size");
  str(w, s.content_size);
}

}  // namespace

std::string build_request_body(const ChatRequest& request, ApiFlavor flavor) {
  const bool bigmodel = flavor == ApiFlavor::bigmodel;
  // Sized from the messages (plus the fixed members and some escapes): one allocation, not a growth series.
  std::size_t text = request.web_search ? request.web_search->query.size() : 0;
  for (const auto& m : request.messages) text += m.content.size();
  rapidjson::StringBuffer buf(nullptr, text + text / 8 + 512);
  Writer w(buf);
  const ModelSettings& s = request.settings;

  w.StartObject();
  w.Key("model");
  str(w, request.model);
  w.Key("messages");
  w.StartArray();
  for (const auto& m : request.messages) {
    w.StartObject();
    w.Key("role");
    str(w, m.role);
    w.Key("content");
    str(w, m.content);
    w.EndObject();
  }
  w.EndArray();
  // The ranges were checked with the configuration (settings_problem): sent as given, never clamped.
  w.Key("temperature");
  w.Double(s.temperature);
  w.Key("top_p");
  w.Double(s.top_p);
  w.Key("max_tokens");
  w.Int(s.max_tokens);
  w.Key("stream");
  w.Bool(request.stream);
  if (s.response_format == ResponseFormat::json_object) {
    w.Key("response_format");
    w.StartObject();
    w.Key("type");
    str(w, "json_object");
    w.EndObject();
  }
  if (bigmodel && !request.request_id.empty()) {
    w.Key("request_id");
    str(w, request.request_id);
  }
  if (bigmodel && s.thinking != Thinking::automatic) {
    w.Key("thinking");
    w.StartObject();
    w.Key("type");
    str(w, s.thinking == Thinking::enabled ? "enabled" : "disabled");
    w.EndObject();
  }
  if (bigmodel && request.web_search) {
    w.Key("tools");
    w.StartArray();
    w.StartObject();
    w.Key("type");
    str(w, "web_search");
    w.Key("web_search");
    w.StartObject();
    w.Key("enable");
    w.Bool(true);
    w.Key("search_result");
    w.Bool(true);
    w.Key("search_query");
    str(w, request.web_search->query);
    write_search_settings(w, request.web_search->settings);
    w.EndObject();
    w.EndObject();
    w.EndArray();
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::string build_web_search_body(const WebSearchRequest& request) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("search_query");
  str(w, truncate_utf8(request.query, kMaxSearchQueryChars));
  write_search_settings(w, request.settings);
  if (!request.request_id.empty()) {
    w.Key("request_id");
    str(w, request.request_id);
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace cbm
