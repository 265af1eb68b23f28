// The simulator's Batch API store on a manual clock (every phase at a known instant, no waiting) and its
// multipart parser on good, truncated and random bodies. The HTTP side:
// tests/integration/batch_simulator_test.cpp.
#include <rapidjson/document.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "simulator/batch_store.h"
#include "simulator/multipart.h"

using namespace std::chrono_literals;
using simulator::BatchStore;

namespace {

// A clock only the test moves.
struct ManualClock {
  std::chrono::system_clock::time_point now{std::chrono::seconds(1'700'000'000)};
  BatchStore::Clock function() {
    return [this] { return now; };
  }
};

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  INFO(text);
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

const std::string kBoundary = "b0undary";
const std::string kContentType = "multipart/form-data; boundary=\"" + kBoundary + "\"";

std::string form(const std::string& file, const std::string& purpose = "batch") {
  return "preamble to ignore\r\n--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n" + purpose + "\r\n--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n" +
         file + "\r\n--" + kBoundary + "--\r\n";
}

std::string lines(int n, const std::string& suffix = "") {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out +=
        R"({"custom_id":"r)" + std::to_string(i) +
        R"(","method":"POST","url":"/v4/chat/completions","body":{"model":"glm-4.5-flash","messages":[{"role":"user","content":"topic )" +
        std::to_string(i) + suffix + R"("}]}})" + "\n";
  }
  return out;
}

struct Store {
  explicit Store(double seconds) {
    options.batch_seconds = seconds;
    options.models = {"glm-4.5-flash"};
  }
  simulator::Options options;
  simulator::MarkerLedger ledger;
  ManualClock clock;
  BatchStore store{options, ledger, clock.function()};

  std::string create(const std::string& file) {
    const auto uploaded = store.upload(kContentType, form(file));
    INFO(uploaded.body);
    REQUIRE(uploaded.status == 200);
    const auto created =
        store.create_batch(R"({"input_file_id":")" + std::string(parse(uploaded.body)["id"].GetString()) +
                           R"(","endpoint":"/v4/chat/completions"})");
    INFO(created.body);
    REQUIRE(created.status == 200);
    return parse(created.body)["id"].GetString();
  }
  rapidjson::Document batch(const std::string& id) {
    const auto r = store.retrieve_batch(id);
    REQUIRE(r.status == 200);
    return parse(r.body);
  }
};

std::string status(const rapidjson::Document& batch) {
  return batch["status"].GetString();
}

}  // namespace

TEST_CASE("simulator batch: each phase at its fraction of --batch-seconds, counts moving evenly",
          "[batch_sim]") {
  Store s(1.0);
  const std::string id = s.create(lines(80));
  const std::int64_t t0 = 1'700'000'000;
  CHECK(status(s.batch(id)) == "validating");
  CHECK(s.batch(id)["request_counts"]["completed"].GetUint64() == 0);

  s.clock.now += 100ms;  // validating ends at a tenth
  auto b = s.batch(id);
  CHECK(status(b) == "in_progress");
  CHECK(b["in_progress_at"].GetInt64() == t0);
  CHECK(b["request_counts"]["completed"].GetUint64() == 0);

  s.clock.now += 400ms;  // halfway through in_progress (0.1 .. 0.9)
  b = s.batch(id);
  CHECK(b["request_counts"]["completed"].GetUint64() == 40);
  CHECK(b["output_file_id"].IsNull());

  s.clock.now += 400ms;
  b = s.batch(id);
  CHECK(status(b) == "finalizing");
  CHECK(b["request_counts"]["completed"].GetUint64() == 80);

  s.clock.now += 100ms;
  b = s.batch(id);
  CHECK(status(b) == "completed");
  CHECK(b["completed_at"].GetInt64() == t0 + 1);
  CHECK(b["expires_at"].GetInt64() == t0 + 24 * 3600);
  const auto content = s.store.file_content(b["output_file_id"].GetString(), "");
  CHECK(content.status == 200);
  CHECK(std::count(content.body.begin(), content.body.end(), '\n') == 80);
  // Ranges: from an offset, between two, one ending past the file, one starting past it.
  const std::string output = b["output_file_id"].GetString();
  const auto from = s.store.file_content(output, "bytes=10-");
  CHECK(from.status == 206);
  CHECK(from.body == content.body.substr(10));
  CHECK(from.content_range ==
        "bytes 10-" + std::to_string(content.body.size() - 1) + "/" + std::to_string(content.body.size()));
  CHECK(s.store.file_content(output, "bytes=10-19").body == content.body.substr(10, 10));
  CHECK(s.store.file_content(output, "bytes=10-18446744073709551615").body == content.body.substr(10));
  CHECK(s.store.file_content(output, "bytes=" + std::to_string(content.body.size()) + "-").status == 416);
  CHECK(s.store.file_content(output, "bytes=-5").status == 200);  // suffix ranges: served whole
}

TEST_CASE("simulator batch: a hold stops a batch mid in_progress however long, and the release resumes it",
          "[batch_sim]") {
  Store s(1.0);
  s.store.hold("in_progress");
  const std::string id = s.create(lines(10));
  s.clock.now += 1h;
  auto b = s.batch(id);
  CHECK(status(b) == "in_progress");
  const auto held_at = b["request_counts"]["completed"].GetUint64();
  CHECK(held_at > 0);
  CHECK(held_at < 10);
  s.store.release();
  CHECK(s.batch(id)["request_counts"]["completed"].GetUint64() == held_at);  // time held does not count
  s.clock.now += 501ms;                                                      // held at 499 ms of 1 s
  CHECK(status(s.batch(id)) == "completed");
  CHECK_THROWS_AS(s.store.hold("sideways"), std::invalid_argument);
}

TEST_CASE("simulator batch: cancel freezes the finished lines, cancelled a tenth later", "[batch_sim]") {
  Store s(1.0);
  const std::string id = s.create(lines(8));
  s.clock.now += 500ms;
  const auto cancelling = parse(s.store.cancel_batch(id).body);
  CHECK(status(cancelling) == "cancelling");
  const auto finished = cancelling["request_counts"]["completed"].GetUint64();
  CHECK(finished == 4);
  s.clock.now += 99ms;
  CHECK(status(s.batch(id)) == "cancelling");
  s.clock.now += 1ms;
  const auto cancelled = s.batch(id);
  CHECK(status(cancelled) == "cancelled");
  CHECK(cancelled["request_counts"]["completed"].GetUint64() == finished);
  const auto output = s.store.file_content(cancelled["output_file_id"].GetString(), "");
  CHECK(std::count(output.body.begin(), output.body.end(), '\n') == 4);
}

TEST_CASE(
    "simulator batch: a line's error fault lands in the error file, and more lines than allowed fail it",
    "[batch_sim]") {
  Store s(0);
  s.options.batch_max_lines = 3;
  std::string file = lines(2);
  file +=
      R"({"custom_id":"bad","method":"POST","url":"/v4/chat/completions","body":{"model":"glm-4.5-flash","messages":[{"role":"user","content":"x [[fault:code_1210]]"}]}})";
  const auto done = s.batch(s.create(file));
  CHECK(status(done) == "completed");
  CHECK(done["request_counts"]["failed"].GetUint64() == 1);
  const auto errors = parse(s.store.file_content(done["error_file_id"].GetString(), "").body);
  CHECK(errors["response"]["status_code"].GetInt() == 400);
  CHECK(std::string(errors["response"]["body"]["error"]["code"].GetString()) == "1210");

  const auto too_many = s.batch(s.create(lines(4)));
  CHECK(status(too_many) == "failed");
  CHECK(std::string(too_many["errors"]["data"][0]["code"].GetString()) == "too_many_lines");
  CHECK(too_many["errors"]["data"][0]["line"].GetUint64() == 4);
}

TEST_CASE("simulator multipart: parts, names, filenames and contents as sent", "[batch_sim]") {
  const auto boundary = simulator::multipart_boundary(kContentType);
  REQUIRE(boundary.index() == 0);
  CHECK(std::get<0>(boundary) == kBoundary);
  const std::string file = "line one\r\n--b0undar not the boundary\r\nline two";
  const std::string body = form(file);
  const auto parsed = simulator::parse_multipart(body, kBoundary);
  REQUIRE(parsed.index() == 0);
  const auto& parts = std::get<0>(parsed);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].name == "purpose");
  CHECK_FALSE(parts[0].filename);
  CHECK(parts[0].content == "batch");
  CHECK(parts[1].name == "file");
  CHECK(parts[1].filename == std::optional<std::string>("in.jsonl"));
  CHECK(parts[1].content == file);

  CHECK(simulator::multipart_boundary("multipart/form-data").index() == 1);
  CHECK(simulator::multipart_boundary("text/plain; boundary=x").index() == 1);
  CHECK(simulator::multipart_boundary("multipart/form-data; boundary=" + std::string(300, 'b')).index() == 1);
  std::string many;
  for (int i = 0; i < 20; ++i)
    many += "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nx\r\n";
  many += "--" + kBoundary + "--";
  CHECK(simulator::parse_multipart(many, kBoundary).index() == 1);
}

TEST_CASE("simulator multipart: every truncation and random bytes give parts or an error, never a crash",
          "[batch_sim]") {
  const std::string body = form(lines(2));
  std::size_t errors = 0;
  for (std::size_t n = 0; n < body.size(); ++n) {
    const auto parsed = simulator::parse_multipart(std::string_view(body).substr(0, n), kBoundary);
    errors += parsed.index() == 1 ? 1 : 0;
  }
  CHECK(errors == body.size() - 2);  // nothing short of the close delimiter is a whole body
  std::mt19937 rng(16);
  const std::string alphabet = "-\r\n\"b0undary:;= Content-Disposition form-data name filename";
  for (int round = 0; round < 2000; ++round) {
    std::string noise;
    const std::size_t length = rng() % 200;
    for (std::size_t i = 0; i < length; ++i) noise.push_back(alphabet[rng() % alphabet.size()]);
    const auto parsed = simulator::parse_multipart(noise, kBoundary);
    if (parsed.index() == 0) {
      for (const auto& part : std::get<0>(parsed)) CHECK(part.content.size() <= noise.size());
    }
  }
}
