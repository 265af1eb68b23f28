#include "request_builder.hpp"

#include <rapidjson/writer.h>

#include <algorithm>

namespace cbm {

namespace {

// rapidjson's output stream concept over a std::string: the body is built where it is returned, in
// one allocation when `reserve` guessed right.
struct StringOutput {
  using Ch = char;
  std::string& out;
  void Put(char c) { out.push_back(c); }
  void Flush() {}
};

}  // namespace

std::string build_request_body(const ChatRequest& request) {
  std::string body;
  std::size_t text = request.web_search ? request.web_search->query.size() : 0;
  for (const auto& m : request.messages) text += m.content.size();
  body.reserve(text + text / 8 + 384);  // the fixed members, and some room for escapes
  StringOutput buf{body};
  rapidjson::Writer<StringOutput> w(buf);
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
  return body;
}

}  // namespace cbm
