#include "request_builder.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

namespace cbm {

std::string build_request_body(const ChatRequest& request) {
  // Sized from the messages (plus the fixed members and some escapes): one allocation, not a growth series.
  std::size_t text = request.web_search ? request.web_search->query.size() : 0;
  for (const auto& m : request.messages) text += m.content.size();
  rapidjson::StringBuffer buf(nullptr, text + text / 8 + 384);
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };

  w.StartObject();
  w.Key("model");
  str(request.model);
  w.Key("messages");
  w.StartArray();
  for (const auto& m : request.messages) {
    w.StartObject();
    w.Key("role");
    str(m.role);
    w.Key("content");
    str(m.content);
    w.EndObject();
  }
  w.EndArray();
  // The platform takes temperature in [0,1] and top_p in [0.01,1] (the SDKs clamp the same way).
  w.Key("temperature");
  w.Double(std::clamp(request.temperature, 0.0, 1.0));
  w.Key("top_p");
  w.Double(std::clamp(request.top_p, 0.01, 1.0));
  w.Key("max_tokens");
  w.Int(request.max_tokens);
  w.Key("stream");
  w.Bool(request.stream);
  if (!request.request_id.empty()) {
    w.Key("request_id");
    str(request.request_id);
  }
  w.Key("thinking");
  w.StartObject();
  w.Key("type");
  str("disabled");
  w.EndObject();
  if (request.web_search) {
    w.Key("tools");
    w.StartArray();
    w.StartObject();
    w.Key("type");
    str("web_search");
    w.Key("web_search");
    w.StartObject();
    w.Key("enable");
    w.Bool(true);
    w.Key("search_result");
    w.Bool(true);
    w.Key("search_query");
    str(request.web_search->query);
    w.Key("count");
    w.Int(request.web_search->count);
    w.Key("search_recency_filter");
    str("noLimit");
    w.EndObject();
    w.EndObject();
    w.EndArray();
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace cbm
