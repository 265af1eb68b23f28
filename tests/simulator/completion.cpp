#include "completion.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

namespace simulator {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::size_t kStreamPieces = 4;

constexpr std::array<std::string_view, 8> kFiller = {
    "The evidence points in several directions at once. ",
    "Early adopters reported measurable gains within a year. ",
    "Costs fell steadily as the supply chain matured. ",
    "Regulators have so far taken a cautious, incremental approach. ",
    "Critics argue that the long-term effects remain poorly understood. ",
    "Regional differences are larger than the national averages suggest. ",
    "Most forecasts expect the trend to continue over the next decade. ",
    "Further research is needed before firm conclusions can be drawn. ",
};

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// "<UTC yyyymmddHHMMSS><16 hex>", the length and look of the platform's ids. splitmix64 is a bijection,
// so distinct counter values give distinct ids; the random salt keeps ids distinct across runs.
std::string new_completion_id(std::int64_t now) {
  static const std::uint64_t salt = std::random_device{}() * 0x100000001ull;
  static std::atomic<std::uint64_t> counter{0};
  const std::uint64_t unique = splitmix64(salt + counter.fetch_add(1, std::memory_order_relaxed));

  // Calendar arithmetic rather than gmtime_r, which takes glibc's process-wide time-zone lock.
  using namespace std::chrono;
  const sys_seconds time{seconds(now)};
  const sys_days day = floor<days>(time);
  const year_month_day date(day);
  const hh_mm_ss clock(time - day);
  std::array<char, 40> id{};
  const int length =
      std::snprintf(id.data(), id.size(), "%04d%02u%02u%02d%02d%02d%016llx", static_cast<int>(date.year()),
                    static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                    static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                    static_cast<int>(clock.seconds().count()), static_cast<unsigned long long>(unique));
  return {id.data(), static_cast<std::size_t>(length)};
}

std::string generate_content(std::string_view topic, std::size_t content_bytes) {
  std::string content;
  content.reserve(content_bytes + 80);
  content.append("Analysis of ").append(topic).append(": ");
  for (std::uint64_t pick = fnv1a(topic); content.size() < content_bytes; ++pick) {
    content.append(kFiller[pick % kFiller.size()]);
  }
  // The filler is ASCII, so cutting inside it never splits a UTF-8 sequence.
  const std::size_t prefix = topic.size() + 14;
  if (content.size() > content_bytes && content_bytes > prefix) content.resize(content_bytes);
  return content;
}

// Splits `text` into up to `pieces` parts without cutting a UTF-8 sequence.
std::vector<std::string_view> split_utf8(std::string_view text, std::size_t pieces) {
  std::vector<std::string_view> parts;
  const std::size_t step = std::max<std::size_t>(1, text.size() / pieces);
  while (!text.empty()) {
    std::size_t cut = std::min(step, text.size());
    while (cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) ++cut;
    if (parts.size() + 1 == pieces) cut = text.size();
    parts.push_back(text.substr(0, cut));
    text.remove_prefix(cut);
  }
  return parts;
}

void string(JsonWriter& writer, std::string_view text) {
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

void write_header_fields(JsonWriter& writer, const Completion& completion) {
  writer.Key("id");
  string(writer, completion.id);
  writer.Key("request_id");
  string(writer, completion.request_id);
  writer.Key("created");
  writer.Int64(completion.created);
  writer.Key("model");
  string(writer, completion.model);
}

void write_usage(JsonWriter& writer, const Usage& usage) {
  writer.Key("usage");
  writer.StartObject();
  writer.Key("prompt_tokens");
  writer.Uint64(usage.prompt_tokens);
  writer.Key("completion_tokens");
  writer.Uint64(usage.completion_tokens);
  writer.Key("total_tokens");
  writer.Uint64(usage.prompt_tokens + usage.completion_tokens);
  writer.EndObject();
}

// `key`: [count results about topic]: the chat answer's web_search[] and the Web Search API's
// search_result[] alike.
void write_results(JsonWriter& writer, const char* key, const std::string& topic, unsigned count) {
  // A URL-safe slug: the topic's hash, so links are stable for a topic whatever its characters.
  const std::string slug = std::to_string(fnv1a(topic) % 1000000007ull);
  writer.Key(key);
  writer.StartArray();
  for (unsigned i = 1; i <= count; ++i) {
    const std::string n = std::to_string(i);
    writer.StartObject();
    writer.Key("title");
    string(writer, "Result " + n + " about " + topic);
    writer.Key("content");
    string(writer, "Summary " + n + ": what the sources say about " + topic + ".");
    writer.Key("link");
    string(writer, "https://example.com/" + slug + "/" + n);
    writer.Key("media");
    string(writer, "Example News");
    writer.Key("icon");
    string(writer, "https://example.com/favicon.ico");
    writer.Key("refer");
    string(writer, "ref_" + n);
    writer.Key("publish_date");
    string(writer, "2025-04-11");
    writer.EndObject();
  }
  writer.EndArray();
}

void write_web_search(JsonWriter& writer, const Completion& completion) {
  if (completion.web_search_count == 0) return;
  write_results(writer, "web_search", completion.topic, completion.web_search_count);
}

// `"message":{...}` or `"delta":{...}` with the given content, or a number under kWrongTypes.
void write_message(JsonWriter& writer, const char* key, std::string_view content, Shape shape) {
  writer.Key(key);
  writer.StartObject();
  writer.Key("role");
  writer.String("assistant");
  writer.Key("content");
  if (shape == Shape::kWrongTypes) {
    writer.Int(42);
  } else {
    string(writer, content);
  }
  writer.EndObject();
}

std::string take(const rapidjson::StringBuffer& buffer) {
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace

std::string render_web_search_answer(const WebSearchApiRequest& request) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  const auto created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string id = new_completion_id(created);
  writer.StartObject();
  writer.Key("id");
  string(writer, id);
  writer.Key("created");
  writer.Int64(created);
  writer.Key("request_id");
  string(writer, request.request_id.empty() ? id : request.request_id);
  writer.Key("search_intent");
  writer.StartArray();
  writer.StartObject();
  writer.Key("query");
  string(writer, request.query);
  writer.Key("intent");
  string(writer, "SEARCH_ALL");
  writer.Key("keywords");
  string(writer, request.query);
  writer.EndObject();
  writer.EndArray();
  write_results(writer, "search_result", request.query, request.count);
  writer.EndObject();
  return take(buffer);
}

std::uint64_t tokens_for(std::size_t bytes) {
  return std::max<std::uint64_t>(1, (bytes + 3) / 4);
}

Completion make_completion(const ChatRequest& request, std::size_t content_bytes) {
  Completion completion;
  completion.created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  completion.id = new_completion_id(completion.created);
  completion.request_id = request.request_id.empty() ? completion.id : request.request_id;
  completion.model = request.model;
  completion.topic = std::string(request.topic());
  completion.content = generate_content(completion.topic, content_bytes);
  completion.usage = {tokens_for(request.prompt_bytes), tokens_for(completion.content.size())};
  if (request.web_search && request.web_search->return_results) {
    completion.web_search_count = request.web_search->count;
  }
  return completion;
}

// The object's opening up to its choice's first field: the header fields, then "choices": [ and,
// unless the shape has none, the choice's {"index": 0. False when there is no choice to fill.
bool open_choice(JsonWriter& writer, const Completion& completion, Shape shape) {
  writer.StartObject();
  write_header_fields(writer, completion);
  writer.Key("choices");
  writer.StartArray();
  if (shape == Shape::kEmptyChoices) return false;
  writer.StartObject();
  writer.Key("index");
  writer.Int(0);
  return true;
}

std::string render_body(const Completion& completion, Shape shape) {
  rapidjson::StringBuffer buffer;
  buffer.Reserve(completion.content.size() + 512);
  JsonWriter writer(buffer);
  if (open_choice(writer, completion, shape)) {
    writer.Key("finish_reason");
    string(writer, completion.finish_reason);
    write_message(writer, "message", completion.content, shape);
    writer.EndObject();
  }
  writer.EndArray();
  write_usage(writer, completion.usage);
  write_web_search(writer, completion);
  writer.EndObject();
  return take(buffer);
}

std::vector<std::string> render_stream_chunks(const Completion& completion, Shape shape) {
  std::vector<std::string> chunks;
  const auto pieces = split_utf8(completion.content, kStreamPieces);
  // One chunk per piece, then the closing chunk; an empty answer still gets its closing chunk.
  for (std::size_t i = 0; i <= pieces.size(); ++i) {
    const bool last = i == pieces.size();
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    if (open_choice(writer, completion, shape)) {
      if (last) {
        writer.Key("finish_reason");
        string(writer, completion.finish_reason);
      }
      write_message(writer, "delta", last ? std::string_view{} : pieces[i], shape);
      writer.EndObject();
    }
    writer.EndArray();
    if (i == 0) write_web_search(writer, completion);
    if (last) write_usage(writer, completion.usage);
    writer.EndObject();
    chunks.push_back(take(buffer));
  }
  return chunks;
}

}  // namespace simulator
