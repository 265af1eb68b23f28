#include "response_parser.hpp"

#include "bounded_json.hpp"
#include "json_reader.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <string>

namespace cbm {
namespace {

using rapidjson::Value;

// The iterative parser keeps hostile nesting depth off the call stack.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag;
// What an answer may hold: a real one (50 search results, its choices, usage) has a few thousand
// values at most, nested under ten deep. Documented in docs/protocol.md ("Answers from the server").
constexpr JsonBounds kAnswerBounds{64, 100000};

void read_usage(JsonReader& top, std::string& error, Usage& usage) {
  if (const Value* u = top.object("usage")) {
    JsonReader r(*u, "usage", error);
    r.integer("prompt_tokens", usage.prompt_tokens);
    r.integer("completion_tokens", usage.completion_tokens);
    r.integer("total_tokens", usage.total_tokens);
  }
}

// The sources of a chat answer (`web_search`) or of a Web Search API answer (`search_result`).
void read_web_search(JsonReader& top, std::string& error, std::vector<Source>& out,
                     const char* field = "web_search") {
  const Value* arr = top.array(field);
  if (arr == nullptr) return;
  for (rapidjson::SizeType i = 0; i < arr->Size(); ++i) {
    const Value& item = (*arr)[i];
    const std::string path = top.element_path(field, i);
    if (!item.IsObject()) {
      if (error.empty()) error = path + ": expected object, got " + std::string(json_type_name(item));
      return;
    }
    JsonReader r(item, path, error);
    Source s;
    r.string("title", s.title);
    r.string("link", s.link);
    r.string("media", s.media);
    r.string("publish_date", s.publish_date);
    r.string("content", s.content);
    out.push_back(std::move(s));
  }
}

// The first choice's message (or delta, for stream chunks), appended to `resp`.
void read_first_choice(JsonReader& top, std::string& error, const char* message_field, bool append,
                       ChatResponse& resp) {
  const Value* choices = top.array("choices");
  if (choices == nullptr || choices->Empty()) return;
  const Value& c0 = (*choices)[0];
  if (!c0.IsObject()) {
    if (error.empty()) error = "choices[0]: expected object, got " + std::string(json_type_name(c0));
    return;
  }
  JsonReader choice(c0, "choices[0]", error);
  choice.string("finish_reason", resp.finish_reason);
  const Value* msg = choice.object(message_field);
  if (msg == nullptr) return;
  JsonReader m(*msg, choice.child_path(message_field), error);
  std::string content;
  std::string reasoning;
  m.string("content", content);
  m.string("reasoning_content", reasoning);
  if (append) {
    resp.content += content;
    resp.reasoning_content += reasoning;
  } else {
    resp.content = std::move(content);
    resp.reasoning_content = std::move(reasoning);
  }
}

bool has_choices(const Value& doc) {
  auto it = doc.FindMember("choices");
  return it != doc.MemberEnd() && it->value.IsArray() && !it->value.Empty();
}

// `{"code":"1302","message":"..."}`: the code as a string or an integer.
PlatformError read_platform_error(const Value& e) {
  PlatformError out;
  auto code = e.FindMember("code");
  if (code != e.MemberEnd()) {
    if (code->value.IsString()) {
      out.code.assign(code->value.GetString(), code->value.GetStringLength());
    } else if (code->value.IsInt64()) {
      out.code = std::to_string(code->value.GetInt64());
    }
  }
  auto message = e.FindMember("message");
  if (message != e.MemberEnd() && message->value.IsString()) {
    out.message.assign(message->value.GetString(), message->value.GetStringLength());
  }
  return out;
}

std::optional<PlatformError> error_member(const Value& doc) {
  auto it = doc.FindMember("error");
  if (it == doc.MemberEnd() || !it->value.IsObject()) return std::nullopt;
  return read_platform_error(it->value);
}

// How every body from the wire is parsed: into a document whose values and parse stack start in the
// caller's frame (a typical answer, a few KiB, needs no heap allocation; a larger one spills over),
// in place in a NUL-terminated copy (strings are unescaped where they lie, not copied a character at
// a time). A NUL byte of the body's own is not JSON, and would end the copy early: refused. A body
// whose shape passes kAnswerBounds is refused before a value is built (bounded_json.hpp): an 8 MiB
// body of small values would otherwise cost a document many times its size (16 bytes a value).
class LocalDocument {
 public:
  using Pool = rapidjson::MemoryPoolAllocator<>;
  using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, Pool, Pool>;

  LocalDocument() : values_(value_bytes_, sizeof value_bytes_), stack_(stack_bytes_, sizeof stack_bytes_),
                    doc_(&values_, sizeof stack_bytes_ / 2, &stack_) {}
  LocalDocument(const LocalDocument&) = delete;
  LocalDocument& operator=(const LocalDocument&) = delete;

  // Parses `body`; "" on success, else what is wrong with it ("invalid JSON at offset N: ...").
  std::string parse(std::string_view body) {
    if (const auto nul = body.find('\0'); nul != std::string_view::npos) {
      return "invalid JSON at offset " + std::to_string(nul) + ": a NUL byte";
    }
    if (auto problem = json_shape_problem(body, kAnswerBounds)) return "refused: " + *problem;
    text_.assign(body);
    doc_.ParseInsitu<kParseFlags>(text_.data());
    if (!doc_.HasParseError()) return {};
    return "invalid JSON at offset " + std::to_string(doc_.GetErrorOffset()) + ": " +
           rapidjson::GetParseError_En(doc_.GetParseError());
  }

  const Document& operator*() const { return doc_; }

 private:
  alignas(8) char value_bytes_[16384];
  alignas(8) char stack_bytes_[4096];
  Pool values_;
  Pool stack_;
  std::string text_;  // the strings of doc_ point into it
  Document doc_;
};

}  // namespace

Result<ChatResponse, ParseError> parse_chat_response(std::string_view body) {
  LocalDocument local;
  if (auto error = local.parse(body); !error.empty()) return Err{ParseError{error}};
  const auto& doc = *local;
  if (!doc.IsObject()) return Err{ParseError{"response: expected object, got " + std::string(json_type_name(doc))}};

  std::string error;
  JsonReader top(doc, "", error);
  ChatResponse resp;
  top.string("id", resp.id);
  top.string("request_id", resp.request_id);
  top.string("model", resp.model);
  read_first_choice(top, error, "message", false, resp);
  read_usage(top, error, resp.usage);
  read_web_search(top, error, resp.web_search);
  if (!error.empty()) return Err{ParseError{error}};
  if (!has_choices(doc)) return Err{ParseError{"choices: missing or empty"}};
  return resp;
}

Result<StreamOutcome, ParseError> parse_chat_stream(std::string_view body) {
  StreamOutcome out;
  bool saw_chunk = false;
  bool saw_done = false;
  bool error_event = false;  // the event being read was announced by `event: error`
  std::size_t pos = 0;
  while (pos < body.size() && !saw_done) {
    std::size_t eol = body.find('\n', pos);
    std::string_view line = body.substr(pos, eol == std::string_view::npos ? body.size() - pos : eol - pos);
    pos = eol == std::string_view::npos ? body.size() : eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {  // a blank line ends an event
      error_event = false;
      continue;
    }
    if (line.starts_with("event:")) {
      line.remove_prefix(6);
      if (line.starts_with(' ')) line.remove_prefix(1);
      error_event = line == "error";
      continue;
    }
    // Only `data:` fields matter beyond that; comments (":") and other fields (id:, retry:) are skipped.
    if (!line.starts_with("data:")) continue;
    line.remove_prefix(5);
    if (line.starts_with(' ')) line.remove_prefix(1);
    if (line == "[DONE]" && !error_event) {
      saw_done = true;
      break;
    }
    LocalDocument local;
    const std::string parse_error = local.parse(line);
    const auto& doc = *local;
    if (error_event) {
      // `event: error` + `data: {"error":{...}}`, or the error object itself, or plain text.
      if (!parse_error.empty() || !doc.IsObject()) {
        out.error_frame = PlatformError{"", std::string(line)};
      } else if (auto e = error_member(doc)) {
        out.error_frame = std::move(e);
      } else {
        out.error_frame = read_platform_error(doc);
      }
      return out;
    }
    if (!parse_error.empty()) return Err{ParseError{"stream chunk: " + parse_error}};
    if (!doc.IsObject()) return Err{ParseError{"stream chunk: expected object, got " + std::string(json_type_name(doc))}};
    if (auto e = error_member(doc)) {
      out.error_frame = std::move(e);
      return out;
    }
    saw_chunk = true;
    std::string error;
    JsonReader top(doc, "", error);
    top.string("id", out.response.id);
    top.string("request_id", out.response.request_id);
    top.string("model", out.response.model);
    read_first_choice(top, error, "delta", true, out.response);
    read_usage(top, error, out.response.usage);
    read_web_search(top, error, out.response.web_search);
    if (!error.empty()) return Err{ParseError{"stream chunk: " + error}};
  }
  if (!saw_done) return Err{ParseError{"stream ended without data: [DONE]"}};
  if (!saw_chunk) return Err{ParseError{"stream carried no chunk"}};
  return out;
}

Result<ChatResponse, ParseError> parse_web_search_response(std::string_view body) {
  LocalDocument local;
  if (auto error = local.parse(body); !error.empty()) return Err{ParseError{error}};
  const auto& doc = *local;
  if (!doc.IsObject())
    return Err{ParseError{"response: expected object, got " + std::string(json_type_name(doc))}};
  if (doc.HasMember("error")) return Err{ParseError{"error: an error body, not search results"}};

  std::string error;
  JsonReader top(doc, "", error);
  ChatResponse resp;
  top.string("id", resp.id);
  top.string("request_id", resp.request_id);
  read_web_search(top, error, resp.web_search, "search_result");
  if (!error.empty()) return Err{ParseError{error}};
  const auto results = doc.FindMember("search_result");
  if (results == doc.MemberEnd() || !results->value.IsArray())
    return Err{ParseError{"search_result: missing"}};
  return resp;
}

std::optional<PlatformError> parse_error_body(std::string_view body) {
  LocalDocument local;
  if (!local.parse(body).empty() || !(*local).IsObject()) return std::nullopt;
  return error_member(*local);
}

}  // namespace cbm
