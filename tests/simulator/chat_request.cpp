#include "chat_request.h"

#include <rapidjson/document.h>

#include <algorithm>

#include "request_settings.hpp"

namespace simulator {
namespace {

using rapidjson::Value;

constexpr unsigned kMaxSearchCount = 50;

std::string_view view(const Value& string) {
  return {string.GetString(), string.GetStringLength()};
}

const Value* member(const Value& object, const char* name) {
  const auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// Message content is a string, or (multimodal) an array of parts whose text parts carry "text".
std::string content_text(const Value* content) {
  if (content == nullptr) return {};
  if (content->IsString()) return std::string(view(*content));
  std::string text;
  if (content->IsArray()) {
    for (const auto& part : content->GetArray()) {
      if (!part.IsObject()) continue;
      if (const Value* piece = member(part, "text"); piece != nullptr && piece->IsString()) {
        text.append(view(*piece));
      }
    }
  }
  return text;
}

// The first enabled web_search tool. A missing "enable" counts as enabled, as the SDKs omit it freely.
std::optional<WebSearchTool> find_web_search(const Value* tools) {
  if (tools == nullptr || !tools->IsArray()) return std::nullopt;
  for (const auto& tool : tools->GetArray()) {
    if (!tool.IsObject()) continue;
    const Value* type = member(tool, "type");
    const Value* settings = member(tool, "web_search");
    if (type == nullptr || !type->IsString() || view(*type) != "web_search") continue;
    if (settings == nullptr || !settings->IsObject()) continue;
    if (const Value* enable = member(*settings, "enable"); enable != nullptr && enable->IsFalse()) continue;

    WebSearchTool web_search;
    if (const Value* engine = member(*settings, "search_engine"); engine != nullptr && engine->IsString()) {
      web_search.engine = std::string(view(*engine));
    }
    if (const Value* query = member(*settings, "search_query"); query != nullptr && query->IsString()) {
      web_search.query = std::string(view(*query));
    }
    if (const Value* count = member(*settings, "count"); count != nullptr && count->IsUint()) {
      web_search.count = std::clamp(count->GetUint(), 1u, kMaxSearchCount);
    }
    const Value* search_result = member(*settings, "search_result");
    web_search.return_results = search_result != nullptr && search_result->IsTrue();
    return web_search;
  }
  return std::nullopt;
}

bool known_engine(std::string_view engine) {
  const auto engines = cbm::search_engines();
  return std::find(engines.begin(), engines.end(), engine) != engines.end();
}

// Characters, not bytes: the Web Search API counts what the user sees.
std::size_t utf8_chars(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

}  // namespace

std::string_view ChatRequest::topic() const {
  if (web_search && web_search->query) return *web_search->query;
  return last_user_message;
}

std::variant<ChatRequest, ApiError> parse_chat_request(std::string_view body,
                                                       const std::vector<std::string>& models) {
  // Iterative parsing: a body of a million '[' must not overflow the io thread's stack.
  rapidjson::Document document;
  document.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(body.data(),
                                                                                         body.size());
  if (document.HasParseError() || !document.IsObject()) return api_errors::malformed_json();

  ChatRequest request;
  const Value* model = member(document, "model");
  if (model == nullptr || !model->IsString() || model->GetStringLength() == 0) {
    return api_errors::invalid_field("model", "model is required and must be a non-empty string");
  }
  request.model = std::string(view(*model));

  const Value* messages = member(document, "messages");
  if (messages == nullptr || !messages->IsArray() || messages->Empty()) {
    return api_errors::invalid_field("messages", "messages is required and must be a non-empty array");
  }
  for (const auto& message : messages->GetArray()) {
    const Value* role = message.IsObject() ? member(message, "role") : nullptr;
    if (role == nullptr || !role->IsString()) {
      return api_errors::invalid_field("messages", "every message must be an object with a string role");
    }
    std::string text = content_text(member(message, "content"));
    request.prompt_bytes += text.size();
    if (view(*role) == "user") request.last_user_message = std::move(text);
  }

  if (std::find(models.begin(), models.end(), request.model) == models.end()) {
    return api_errors::unknown_model();
  }
  if (const Value* request_id = member(document, "request_id");
      request_id != nullptr && request_id->IsString()) {
    request.request_id = std::string(view(*request_id));
  }
  if (const Value* stream = member(document, "stream"); stream != nullptr && stream->IsBool()) {
    request.stream = stream->GetBool();
  }
  request.web_search = find_web_search(member(document, "tools"));
  if (request.web_search && !known_engine(request.web_search->engine)) {
    return api_errors::invalid_field("search_engine",
                                     "web_search.search_engine is required: search_std, search_pro, "
                                     "search_pro_sogou, search_pro_quark or search_pro_jina");
  }
  return request;
}

std::variant<WebSearchApiRequest, ApiError> parse_web_search_request(std::string_view body) {
  rapidjson::Document document;
  document.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(body.data(),
                                                                                         body.size());
  if (document.HasParseError() || !document.IsObject()) return api_errors::malformed_json();
  WebSearchApiRequest request;
  const Value* query = member(document, "search_query");
  if (query == nullptr || !query->IsString() || query->GetStringLength() == 0) {
    return api_errors::invalid_field("search_query",
                                     "search_query is required and must be a non-empty string");
  }
  request.query = std::string(view(*query));
  if (utf8_chars(request.query) > cbm::kMaxSearchQueryChars) {
    return api_errors::invalid_field("search_query", "search_query must be at most 70 characters");
  }
  const Value* engine = member(document, "search_engine");
  if (engine == nullptr || !engine->IsString() || !known_engine(view(*engine))) {
    return api_errors::invalid_field("search_engine", "search_engine is required and must be a known engine");
  }
  request.engine = std::string(view(*engine));
  if (const Value* count = member(document, "count"); count != nullptr) {
    if (!count->IsUint() || count->GetUint() < 1 || count->GetUint() > kMaxSearchCount) {
      return api_errors::invalid_field("count", "count must be an integer in 1..50");
    }
    request.count = count->GetUint();
  }
  if (const Value* request_id = member(document, "request_id");
      request_id != nullptr && request_id->IsString()) {
    request.request_id = std::string(view(*request_id));
  }
  return request;
}

}  // namespace simulator
