#include "response_parser.hpp"

#include <catch2/catch.hpp>

#include "bigmodel_client.hpp"

using cbm::parse_chat_response;
using cbm::parse_chat_stream;
using cbm::parse_error_body;

TEST_CASE("a full platform answer yields content, usage, finish reason and web_search sources", "[parser]") {
  const char* body = R"({"id":"2025081814023662804f889e1d4242","request_id":"r-1","created":1755496956,
    "model":"glm-4.5-air","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant",
    "content":"the analysis","reasoning_content":"thoughts"}}],
    "usage":{"prompt_tokens":120,"completion_tokens":40,"total_tokens":160},
    "web_search":[{"title":"T","content":"C","link":"https://x","media":"M","icon":"i","refer":"ref_1",
                   "publish_date":"2025-04-11"}]})";
  auto r = parse_chat_response(body);
  REQUIRE(r.ok());
  CHECK(r->id == "2025081814023662804f889e1d4242");
  CHECK(r->request_id == "r-1");
  CHECK(r->content == "the analysis");
  CHECK(r->reasoning_content == "thoughts");
  CHECK(r->finish_reason == "stop");
  CHECK(r->usage.total_tokens == 160);
  REQUIRE(r->web_search.size() == 1);
  CHECK(r->web_search[0].title == "T");
  CHECK(r->web_search[0].link == "https://x");
  CHECK(r->web_search[0].publish_date == "2025-04-11");
}

TEST_CASE("optional fields may be missing or null", "[parser]") {
  auto r = parse_chat_response(R"({"choices":[{"message":{"content":null,"tool_calls":[]}}]})");
  REQUIRE(r.ok());
  CHECK(r->content.empty());
  CHECK(r->usage.total_tokens == 0);
  CHECK(r->web_search.empty());
}

TEST_CASE("a field of the wrong type is rejected with its path", "[parser]") {
  auto r = parse_chat_response(R"({"choices":[{"message":{"content":42}}]})");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "choices[0].message.content: expected string, got number");

  auto u = parse_chat_response(R"({"choices":[{"message":{"content":"x"}}],"usage":{"total_tokens":"9"}})");
  REQUIRE_FALSE(u.ok());
  CHECK(u.error().message == "usage.total_tokens: expected integer, got string");

  auto w = parse_chat_response(R"({"choices":[{"message":{"content":"x"}}],"web_search":[1]})");
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().message == "web_search[0]: expected object, got number");
}

TEST_CASE("invalid, truncated, empty and non-object bodies are errors, not crashes", "[parser]") {
  CHECK_THAT(parse_chat_response(R"({"id": nope)").error().message, Catch::StartsWith("invalid JSON at offset"));
  CHECK_THAT(parse_chat_response(R"({"choices":[{"message":{"content":"abc)").error().message,
             Catch::StartsWith("invalid JSON"));
  CHECK_FALSE(parse_chat_response("").ok());
  CHECK(parse_chat_response("[1,2]").error().message == "response: expected object, got array");
  CHECK(parse_chat_response(R"({"choices":[]})").error().message == "choices: missing or empty");
  CHECK(parse_chat_response(R"({"id":"x"})").error().message == "choices: missing or empty");
  // A valid document followed by a NUL and more: not JSON (a parser reading up to the NUL would accept it).
  const std::string with_nul = std::string(R"({"choices":[{"message":{"content":"x"}}]})") + '\0' + "trailing";
  CHECK(parse_chat_response(with_nul).error().message == "invalid JSON at offset 41: a NUL byte");
}

TEST_CASE("deeply nested input does not exhaust the stack", "[parser]") {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  CHECK_FALSE(parse_chat_response(deep).ok());
}

TEST_CASE("an answer holding more values than a real one could is refused before a document is built",
          "[parser]") {
  const std::string answer_head =
      "{\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"message\":{\"content\":\"ok\"}}],"
      "\"padding\":[0";
  const auto with_values = [&](std::size_t n) {  // the answer's own values are 7 more
    std::string body = answer_head;
    for (std::size_t i = 1; i < n; ++i) body += ",0";
    return body + "]}";
  };
  auto over = parse_chat_response(with_values(100000));
  REQUIRE_FALSE(over.ok());
  CHECK_THAT(over.error().message, Catch::Contains("more than 100000 values"));
  auto deep = parse_chat_response(std::string(65, '[') + std::string(65, ']'));
  REQUIRE_FALSE(deep.ok());
  CHECK_THAT(deep.error().message, Catch::Contains("nested deeper than 64 levels"));
  auto within = parse_chat_response(with_values(90000));
  REQUIRE(within.ok());
  CHECK(within.value().content == "ok");
}

TEST_CASE("an SSE stream is assembled from its deltas, with usage from the last chunk", "[parser][sse]") {
  const char* body =
      "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n"
      ": keep-alive comment\n\n"
      "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n"
      "data: {\"id\":\"a\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
      "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n"
      "data: [DONE]\n\n";
  auto r = parse_chat_stream(body);
  REQUIRE(r.ok());
  CHECK_FALSE(r->error_frame);
  CHECK(r->response.content == "Hello");
  CHECK(r->response.finish_reason == "stop");
  CHECK(r->response.usage.total_tokens == 3);
}

TEST_CASE("an error frame inside an SSE stream is reported with its code", "[parser][sse]") {
  const char* body =
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
      "data: {\"error\":{\"code\":\"1234\",\"message\":\"net\"}}\n\n";
  auto r = parse_chat_stream(body);
  REQUIRE(r.ok());
  REQUIRE(r->error_frame);
  CHECK(r->error_frame->code == "1234");
  CHECK(r->error_frame->message == "net");
}

TEST_CASE("an `event: error` event is an error frame, whatever shape its data has", "[parser][sse]") {
  const char* wrapped = "event: error\ndata: {\"error\":{\"code\":\"1113\",\"message\":\"no balance\"}}\n\n";
  const char* bare = "event: error\ndata: {\"code\":1310,\"message\":\"capped\"}\n\n";
  const char* text = "event: error\ndata: upstream went away\n\n";
  auto w = parse_chat_stream(wrapped);
  REQUIRE(w.ok());
  REQUIRE(w->error_frame);
  CHECK(w->error_frame->code == "1113");
  CHECK(w->error_frame->message == "no balance");
  auto b = parse_chat_stream(bare);
  REQUIRE(b.ok());
  REQUIRE(b->error_frame);
  CHECK(b->error_frame->code == "1310");
  CHECK(b->error_frame->message == "capped");
  auto t = parse_chat_stream(text);
  REQUIRE(t.ok());
  REQUIRE(t->error_frame);
  CHECK(t->error_frame->code.empty());
  CHECK(t->error_frame->message == "upstream went away");
}

TEST_CASE("an event that is not an error does not make the next one an error", "[parser][sse]") {
  const char* body =
      "event: ping\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  auto r = parse_chat_stream(body);
  REQUIRE(r.ok());
  CHECK_FALSE(r->error_frame);
  CHECK(r->response.content == "ab");
}

TEST_CASE("a stream cut before [DONE] or with a garbled chunk is an error", "[parser][sse]") {
  CHECK(parse_chat_stream("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n").error().message ==
        "stream ended without data: [DONE]");
  CHECK_THAT(parse_chat_stream("data: {oops\n\ndata: [DONE]\n\n").error().message,
             Catch::StartsWith("stream chunk: invalid JSON"));
  CHECK(parse_chat_stream("data: [DONE]\n\n").error().message == "stream carried no chunk");
}

TEST_CASE("error bodies give code and message, with the code as string or number", "[parser]") {
  auto e = parse_error_body(R"({"error":{"code":"1302","message":"too many"},"request_id":"x"})");
  REQUIRE(e);
  CHECK(e->code == "1302");
  CHECK(e->message == "too many");
  CHECK(parse_error_body(R"({"error":{"code":1113,"message":"no balance"}})")->code == "1113");
  CHECK_FALSE(parse_error_body("<html>503 Service Unavailable</html>"));
  CHECK_FALSE(parse_error_body(""));
  CHECK_FALSE(parse_error_body(R"({"error":"flat string"})"));
}

TEST_CASE("Retry-After is read as seconds, as an HTTP date, or as retry-after-ms first", "[parser]") {
  using namespace std::chrono;
  const auto now = system_clock::from_time_t(1700000000);
  CHECK(cbm::parse_retry_after(std::string("3"), std::nullopt, now) == milliseconds(3000));
  CHECK(cbm::parse_retry_after(std::string("3"), std::string("250"), now) == milliseconds(250));
  CHECK(cbm::parse_retry_after(std::string("Tue, 14 Nov 2023 22:13:30 GMT"), std::nullopt, now) ==
        milliseconds(10000));
  CHECK_FALSE(cbm::parse_retry_after(std::string("soon"), std::nullopt, now));
  CHECK_FALSE(cbm::parse_retry_after(std::string("-5"), std::nullopt, now));
  CHECK(cbm::parse_retry_after(std::string("999999999999"), std::nullopt, now) == milliseconds(86400000));
  CHECK_FALSE(cbm::parse_retry_after(std::nullopt, std::nullopt, now));
}

TEST_CASE("a Web Search API answer yields its id and its search_result as sources", "[parser][web_search]") {
  const char* body = R"({"id":"ws-1","created":1755496956,"request_id":"cbm-1-ab-3",
    "search_intent":[{"query":"tides","intent":"SEARCH_ALL","keywords":"tides"}],
    "search_result":[{"title":"T1","content":"C1","link":"https://a","media":"M","icon":"i","refer":"1",
                      "publish_date":"2025-04-11"},{"title":"T2","link":"https://b"}]})";
  auto r = cbm::parse_web_search_response(body);
  REQUIRE(r.ok());
  CHECK(r->id == "ws-1");
  CHECK(r->request_id == "cbm-1-ab-3");
  CHECK(r->content.empty());
  CHECK(r->usage.total_tokens == 0);
  REQUIRE(r->web_search.size() == 2);
  CHECK(r->web_search[0].content == "C1");
  CHECK(r->web_search[1].title == "T2");
  CHECK(cbm::parse_web_search_response(R"({"id":"ws-2","search_result":[]})").ok());
}

TEST_CASE("a Web Search API answer of the wrong shape is an error naming the field", "[parser][web_search]") {
  CHECK(cbm::parse_web_search_response(R"({"id":"x"})").error().message == "search_result: missing");
  CHECK_THAT(cbm::parse_web_search_response(R"({"search_result":[{"title":5}]})").error().message,
             Catch::StartsWith("search_result[0].title: expected string"));
  CHECK_THAT(cbm::parse_web_search_response(R"({"search_result":[7]})").error().message,
             Catch::StartsWith("search_result[0]: expected object"));
  CHECK_FALSE(cbm::parse_web_search_response(R"({"error":{"code":"1214","message":"bad"}})").ok());
  CHECK_FALSE(cbm::parse_web_search_response("[").ok());
  CHECK_FALSE(cbm::parse_web_search_response(std::string(100000, '[')).ok());
}

TEST_CASE("the Web Search API's error under HTTP 200 is classified like a chat call's",
          "[parser][web_search]") {
  cbm::ClientConfig config;
  config.api_key = "k";
  const cbm::BigModelProtocol protocol(config);
  cbm::HttpResponse resp;
  resp.status = 200;
  resp.content_type = "application/json";
  resp.body = R"({"error":{"code":"1113","message":"no balance"}})";
  auto r = protocol.interpret(cbm::Endpoint::web_search, resp);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "1113");
  resp.body = R"({"id":"ws-1","search_result":[{"title":"T"}]})";
  auto ok = protocol.interpret(cbm::Endpoint::web_search, resp);
  REQUIRE(ok.ok());
  CHECK(ok->web_search.at(0).title == "T");
}
