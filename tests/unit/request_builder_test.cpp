// What reaches the wire: every setting in its field, each flavour's fields, the Web Search API's body
// (docs/protocol.md, "Chat completions request", "API flavours", "The Web Search API").
#include "request_builder.hpp"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>

#include "bigmodel_client.hpp"
#include "request_settings.hpp"
#include "worker_config.hpp"

namespace {

cbm::ChatRequest search_request() {
  cbm::ChatRequest req;
  req.model = "glm-4.5-air";
  req.messages = {{"system", "s"}, {"user", "u \"quoted\""}};
  req.request_id = "cbm-1-abcdef-1";
  req.web_search = cbm::WebSearchTool{"topic", {}};
  return req;
}

rapidjson::Document parsed(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

std::string text(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

}  // namespace

TEST_CASE(
    "the default request is BigModel's: thinking disabled, request_id, the web_search tool with its engine",
    "[request]") {
  const auto d = parsed(cbm::build_request_body(search_request()));
  CHECK(text(d["model"]) == "glm-4.5-air");
  CHECK(text(d["messages"][1]["content"]) == "u \"quoted\"");
  CHECK(d["temperature"].GetDouble() == 0.6);
  CHECK(d["top_p"].GetDouble() == 0.95);
  CHECK(d["max_tokens"].GetInt() == 4096);
  CHECK(text(d["thinking"]["type"]) == "disabled");
  CHECK(text(d["request_id"]) == "cbm-1-abcdef-1");
  CHECK_FALSE(d.HasMember("response_format"));
  const auto& ws = d["tools"][0]["web_search"];
  CHECK(text(d["tools"][0]["type"]) == "web_search");
  CHECK(ws["enable"].GetBool());
  CHECK(ws["search_result"].GetBool());
  CHECK(text(ws["search_query"]) == "topic");
  CHECK(text(ws["search_engine"]) == "search_std");
  CHECK(ws["count"].GetInt() == 5);
  CHECK(text(ws["search_recency_filter"]) == "noLimit");
  CHECK(text(ws["content_size"]) == "medium");
  CHECK_FALSE(ws.HasMember("search_domain_filter"));
}

TEST_CASE("each model setting reaches its field, unclamped", "[request]") {
  cbm::ChatRequest req = search_request();
  req.settings.temperature = 0.0;
  req.settings.top_p = 1.0;
  req.settings.max_tokens = 131072;
  req.settings.response_format = cbm::ResponseFormat::json_object;
  SECTION("thinking enabled") {
    req.settings.thinking = cbm::Thinking::enabled;
    const auto d = parsed(cbm::build_request_body(req));
    CHECK(text(d["thinking"]["type"]) == "enabled");
    CHECK(d["temperature"].GetDouble() == 0.0);
    CHECK(d["top_p"].GetDouble() == 1.0);
    CHECK(d["max_tokens"].GetInt() == 131072);
    CHECK(text(d["response_format"]["type"]) == "json_object");
  }
  SECTION("thinking auto sends no thinking field") {
    req.settings.thinking = cbm::Thinking::automatic;
    CHECK_FALSE(parsed(cbm::build_request_body(req)).HasMember("thinking"));
  }
}

TEST_CASE("each search setting reaches the web_search tool", "[request]") {
  cbm::ChatRequest req = search_request();
  req.web_search->settings = {"search_pro_sogou", "oneDay", "www.example.com", 20, "high"};
  const auto d = parsed(cbm::build_request_body(req));
  const auto& ws = d["tools"][0]["web_search"];
  CHECK(text(ws["search_engine"]) == "search_pro_sogou");
  CHECK(text(ws["search_recency_filter"]) == "oneDay");
  CHECK(text(ws["search_domain_filter"]) == "www.example.com");
  CHECK(ws["count"].GetInt() == 20);
  CHECK(text(ws["content_size"]) == "high");
}

TEST_CASE("the openai flavour sends only fields OpenAI accepts", "[request][flavor]") {
  cbm::ChatRequest req = search_request();
  req.settings.thinking = cbm::Thinking::enabled;
  req.settings.response_format = cbm::ResponseFormat::json_object;
  const auto d = parsed(cbm::build_request_body(req, cbm::ApiFlavor::openai));
  for (const auto& member : d.GetObject()) {
    const std::string name = text(member.name);
    INFO(name);
    CHECK((name == "model" || name == "messages" || name == "temperature" || name == "top_p" ||
           name == "max_tokens" || name == "stream" || name == "response_format"));
  }
  CHECK(text(d["response_format"]["type"]) == "json_object");
}

TEST_CASE(
    "the Web Search API body carries the query, cut to 70 characters on a character boundary, and the "
    "filters",
    "[request][web_search]") {
  cbm::WebSearchRequest req;
  std::string query;
  for (int i = 0; i < 80; ++i) query += "\xE6\xBD\xAE";  // 潮, three bytes each
  req.query = query;
  req.settings = {"search-prime", "oneWeek", "example.org", 12, "high"};
  req.request_id = "cbm-1-abcdef-2";
  const auto d = parsed(cbm::build_web_search_body(req));
  CHECK(text(d["search_query"]) == query.substr(0, 70 * 3));
  CHECK(text(d["search_engine"]) == "search-prime");
  CHECK(text(d["search_recency_filter"]) == "oneWeek");
  CHECK(text(d["search_domain_filter"]) == "example.org");
  CHECK(d["count"].GetInt() == 12);
  CHECK(text(d["content_size"]) == "high");
  CHECK(text(d["request_id"]) == "cbm-1-abcdef-2");
}

TEST_CASE("truncation counts UTF-8 characters and never splits one", "[request][web_search]") {
  CHECK(cbm::truncate_utf8("abc", 70) == "abc");
  CHECK(cbm::truncate_utf8("abcdef", 3) == "abc");
  CHECK(cbm::truncate_utf8("a\xC3\xA9"
                           "b",
                           2) == "a\xC3\xA9");
  CHECK(cbm::truncate_utf8("\xF0\x9F\x8C\x8A\xF0\x9F\x8C\x8A", 1) == "\xF0\x9F\x8C\x8A");
  CHECK(cbm::truncate_utf8("\xE6\xBD", 5) == "\xE6\xBD");  // a cut sequence stays as it was
  CHECK(cbm::truncate_utf8("", 3).empty());
}

TEST_CASE(
    "the protocol sends chat calls and web searches to their endpoints with User-Agent and Accept-Language",
    "[request]") {
  cbm::ClientConfig config;
  config.base_url = "http://127.0.0.1:1/api/paas/v4/";
  config.api_key = "k";
  config.accept_language = "en-US,en";
  const cbm::BigModelProtocol protocol(config);
  const cbm::HttpRequest chat = protocol.prepare(cbm::StepRequest{search_request()});
  CHECK(chat.url == "http://127.0.0.1:1/api/paas/v4/chat/completions");
  const cbm::HttpRequest search =
      protocol.prepare(cbm::StepRequest{cbm::WebSearchRequest{"tides", {}, "id-123456"}});
  CHECK(search.url == "http://127.0.0.1:1/api/paas/v4/web_search");
  for (const auto* r : {&chat, &search}) {
    CHECK(std::count(r->headers.begin(), r->headers.end(), "Accept-Language: en-US,en") == 1);
    CHECK(std::count_if(r->headers.begin(), r->headers.end(), [](const std::string& h) {
            return h.starts_with("User-Agent: concurrent_bigmodel/");
          }) == 1);
  }
  CHECK(text(parsed(search.body)["search_query"]) == "tides");
}

TEST_CASE("settings out of range are refused naming the field (and the flag)", "[request][settings]") {
  const cbm::ModelSettings model;
  const cbm::SearchSettings search;
  CHECK_FALSE(cbm::settings_problem(model, search));
  auto bad_model = [&](auto change) {
    cbm::ModelSettings m = model;
    change(m);
    return cbm::settings_problem(m, search);
  };
  auto bad_search = [&](auto change) {
    cbm::SearchSettings s = search;
    change(s);
    return cbm::settings_problem(model, s);
  };
  CHECK(bad_model([](auto& m) { m.temperature = 1.5; })->field == "temperature");
  CHECK(bad_model([](auto& m) { m.temperature = 1.5; })->message == "1.5 is not in [0, 1]");
  CHECK(bad_model([](auto& m) { m.temperature = std::nan(""); })->field == "temperature");
  CHECK(bad_model([](auto& m) { m.top_p = 0.0; })->flag() == "--top-p");
  CHECK(bad_model([](auto& m) { m.max_tokens = 0; })->field == "max_tokens");
  CHECK(bad_model([](auto& m) { m.max_tokens = 131073; })->field == "max_tokens");
  CHECK_FALSE(bad_model([](auto& m) { m.temperature = 0.0; }));
  CHECK_FALSE(bad_model([](auto& m) { m.top_p = 1.0; }));
  CHECK(bad_search([](auto& s) { s.engine = "search-prime-aqdr"; })->flag() == "--search-engine");
  CHECK(bad_search([](auto& s) { s.recency = "oneHour"; })->field == "search_recency");
  CHECK(bad_search([](auto& s) { s.count = 51; })->flag() == "--search-count");
  CHECK(bad_search([](auto& s) { s.count = 0; })->field == "search_count");
  CHECK(bad_search([](auto& s) { s.content_size = "low"; })->field == "search_content_size");
  CHECK(bad_search([](auto& s) { s.domain = "https://x/y"; })->field == "search_domain");
  CHECK_FALSE(bad_search([](auto& s) { s.domain = "www.example.com"; }));
}

TEST_CASE(
    "the Python tool's model is no documented model, and the refusal names a listed one and the way out",
    "[request][models]") {
  CHECK(cbm::is_documented_model("glm-4.5-air"));
  CHECK(cbm::is_documented_model("glm-5.1"));
  CHECK_FALSE(cbm::model_problem("chat_model", "glm-4.7"));
  const auto problem = cbm::model_problem("chat_model", "glm-4.5-aq");
  REQUIRE(problem);
  CHECK(problem->flag() == "--chat-model");
  CHECK_THAT(problem->message, Catch::Contains("glm-4.5-aq") && Catch::Contains("glm-4.5-air") &&
                                   Catch::Contains("--allow-unlisted-model"));
}

TEST_CASE("every setting crosses to the worker", "[request][worker_config]") {
  cbm::WorkerConfig c;
  c.client.flavor = cbm::ApiFlavor::openai;
  c.client.accept_language = "en";
  c.pipeline.model = {0.2, 0.5, 777, cbm::Thinking::automatic, cbm::ResponseFormat::json_object};
  c.pipeline.keep_reasoning = true;
  c.pipeline.search_via = cbm::SearchVia::api;
  c.pipeline.search_settings = {"search_pro", "oneYear", "a.org", 9, "high"};
  auto back = cbm::decode_worker_config(cbm::encode_worker_config(c));
  REQUIRE(back.ok());
  CHECK(back->client.flavor == cbm::ApiFlavor::openai);
  CHECK(back->client.accept_language == "en");
  CHECK(back->pipeline.model.temperature == 0.2);
  CHECK(back->pipeline.model.top_p == 0.5);
  CHECK(back->pipeline.model.max_tokens == 777);
  CHECK(back->pipeline.model.thinking == cbm::Thinking::automatic);
  CHECK(back->pipeline.model.response_format == cbm::ResponseFormat::json_object);
  CHECK(back->pipeline.keep_reasoning);
  CHECK(back->pipeline.search_via == cbm::SearchVia::api);
  CHECK(back->pipeline.search_settings.engine == "search_pro");
  CHECK(back->pipeline.search_settings.recency == "oneYear");
  CHECK(back->pipeline.search_settings.domain == "a.org");
  CHECK(back->pipeline.search_settings.count == 9);
  CHECK(back->pipeline.search_settings.content_size == "high");
  CHECK_THAT(cbm::decode_worker_config(R"({"thinking":"sometimes"})").error().message,
             Catch::Contains("thinking"));
}
