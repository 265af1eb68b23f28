// The simulator's Batch API itself (docs/protocol.md, "Simulator: the Batch API"), spoken to over HTTP as a
// client would: uploads, batches through their states, output and error files, faults, holds and stats.
// The product's `--via batch` is tested against it elsewhere; these tests pin the server it relies on.
#include <rapidjson/document.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;

namespace {

constexpr const char* kModel = "glm-4.5-flash";

std::string authorization() {
  return std::string("Authorization: Bearer ") + kTestKey;
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  INFO(text);
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

// One chat request body about `topic`, as the analysis step sends it.
std::string chat_body(const std::string& topic, const std::string& model = kModel) {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":")" + topic + R"("}]})";
}

std::string jsonl_line(const std::string& custom_id, const std::string& body,
                       const std::string& url = "/v4/chat/completions") {
  return R"({"custom_id":")" + custom_id + R"(","method":"POST","url":")" + url + R"(","body":)" + body +
         "}\n";
}

// A file of `topics`, custom_id "request-<i>".
std::string jsonl(const std::vector<std::string>& topics) {
  std::string out;
  for (std::size_t i = 0; i < topics.size(); ++i)
    out += jsonl_line("request-" + std::to_string(i), chat_body(topics[i]));
  return out;
}

std::vector<std::string> numbered_topics(std::size_t n, const std::string& prefix = "topic") {
  std::vector<std::string> topics;
  for (std::size_t i = 0; i < n; ++i) topics.push_back(prefix + " " + std::to_string(i));
  return topics;
}

HttpReply api(const Simulator& sim, const std::string& method, const std::string& path,
              const std::string& body = {}, std::vector<std::string> headers = {}) {
  headers.push_back(authorization());
  headers.emplace_back("Content-Type: application/json");
  return http_request(method, sim.base_url() + path, body, headers);
}

std::string upload(const Simulator& sim, const std::string& content) {
  const HttpReply r = sim.upload_batch_file("topics.jsonl", content);
  INFO(r.body);
  REQUIRE(r.status == 200);
  const auto d = parse(r.body);
  CHECK(std::string(d["object"].GetString()) == "file");
  CHECK(d["bytes"].GetUint64() == content.size());
  CHECK(std::string(d["filename"].GetString()) == "topics.jsonl");
  CHECK(std::string(d["purpose"].GetString()) == "batch");
  CHECK(d["created_at"].IsInt64());
  return d["id"].GetString();
}

std::string create_batch(const Simulator& sim, const std::string& file_id) {
  const HttpReply r = api(sim, "POST", "/batches",
                          R"({"input_file_id":")" + file_id +
                              R"(","endpoint":"/v4/chat/completions","metadata":{"run":"test"}})");
  INFO(r.body);
  REQUIRE(r.status == 200);
  const auto d = parse(r.body);
  CHECK(std::string(d["object"].GetString()) == "batch");
  CHECK(std::string(d["endpoint"].GetString()) == "/v4/chat/completions");
  CHECK(std::string(d["input_file_id"].GetString()) == file_id);
  CHECK(std::string(d["metadata"]["run"].GetString()) == "test");
  CHECK(std::string(d["status"].GetString()) == "validating");
  return d["id"].GetString();
}

rapidjson::Document get_batch(const Simulator& sim, const std::string& id) {
  const HttpReply r = api(sim, "GET", "/batches/" + id);
  INFO(r.body);
  REQUIRE(r.status == 200);
  return parse(r.body);
}

// Polls the batch until its status is `status` (bounded), recording every status seen on the way.
rapidjson::Document wait_for(const Simulator& sim, const std::string& id, const std::string& status,
                             std::vector<std::string>* seen = nullptr) {
  rapidjson::Document last;
  const bool reached = eventually(
      [&] {
        last = get_batch(sim, id);
        const std::string now = last["status"].GetString();
        if (seen != nullptr && (seen->empty() || seen->back() != now)) seen->push_back(now);
        return now == status;
      },
      20s);
  INFO("last status " << last["status"].GetString());
  REQUIRE(reached);
  return last;
}

// The lines of a file's content, each parsed.
std::vector<rapidjson::Document> download(const Simulator& sim, const std::string& file_id) {
  const HttpReply r = api(sim, "GET", "/files/" + file_id + "/content");
  INFO(r.body.substr(0, 500));
  REQUIRE(r.status == 200);
  std::vector<rapidjson::Document> lines;
  std::size_t begin = 0;
  while (begin < r.body.size()) {
    const std::size_t nl = r.body.find('\n', begin);
    REQUIRE(nl != std::string::npos);  // every line ends with a newline
    lines.push_back(parse(r.body.substr(begin, nl - begin)));
    begin = nl + 1;
  }
  return lines;
}

}  // namespace

TEST_CASE("batch: upload, create, poll to completed and download give every line once, answered as online",
          "[batch_sim]") {
  Simulator sim({"--batch-seconds", "0.4"});
  std::vector<std::string> topics = numbered_topics(20);
  topics[7] = "unsafe [[fault:400_1301]]";
  const std::string file_id = upload(sim, jsonl(topics));
  const std::string id = create_batch(sim, file_id);

  std::vector<std::string> seen;
  const auto done = wait_for(sim, id, "completed", &seen);
  CHECK(seen.back() == "completed");
  CHECK(done["request_counts"]["total"].GetUint64() == 20);
  CHECK(done["request_counts"]["completed"].GetUint64() == 19);
  CHECK(done["request_counts"]["failed"].GetUint64() == 1);
  for (const char* at : {"created_at", "in_progress_at", "finalizing_at", "completed_at"}) {
    INFO(at);
    CHECK(done[at].IsInt64());
  }
  CHECK(done["failed_at"].IsNull());
  CHECK(done["errors"].IsNull());
  REQUIRE(done["output_file_id"].IsString());
  REQUIRE(done["error_file_id"].IsString());

  std::multiset<std::string> answered;
  for (const auto& line : download(sim, done["output_file_id"].GetString())) {
    CHECK(line["response"]["status_code"].GetInt() == 200);
    CHECK(std::string(line["id"].GetString()).starts_with("batch_"));
    CHECK(line["response"]["body"]["request_id"].IsString());
    answered.insert(line["custom_id"].GetString());
  }
  const auto errors = download(sim, done["error_file_id"].GetString());
  REQUIRE(errors.size() == 1);
  CHECK(std::string(errors[0]["custom_id"].GetString()) == "request-7");
  CHECK(errors[0]["response"]["status_code"].GetInt() == 400);
  CHECK(std::string(errors[0]["response"]["body"]["error"]["code"].GetString()) == "1301");
  answered.insert(errors[0]["custom_id"].GetString());
  CHECK(answered.size() == 20);
  CHECK(std::set<std::string>(answered.begin(), answered.end()).size() == 20);

  // The same request body online gets the same answer: one completion code serves both.
  const HttpReply online = api(sim, "POST", "/chat/completions", chat_body(topics[3]));
  REQUIRE(online.status == 200);
  const auto online_body = parse(online.body);
  bool compared = false;
  for (const auto& line : download(sim, done["output_file_id"].GetString())) {
    if (std::string(line["custom_id"].GetString()) != "request-3") continue;
    const auto& body = line["response"]["body"];
    CHECK(std::string(body["choices"][0]["message"]["content"].GetString()) ==
          online_body["choices"][0]["message"]["content"].GetString());
    CHECK(body["usage"]["total_tokens"].GetUint64() == online_body["usage"]["total_tokens"].GetUint64());
    compared = true;
  }
  CHECK(compared);

  CHECK(sim.batch_stat("files_uploaded") == 1);
  CHECK(sim.batch_stat("lines_uploaded") == 20);
  CHECK(sim.batch_stat("batches_created") == 1);
  CHECK(sim.batch_stat("paid_lines") == 20);
  CHECK(sim.batch_stat("content_downloads") == 3);
  CHECK(sim.batches_with_status("completed") == 1);
  // auto_delete_input_file defaults to true: the input is gone once the batch is done.
  CHECK(api(sim, "GET", "/files/" + file_id).status == 404);
}

TEST_CASE("batch: request_counts move during in_progress, and a held batch waits for the release",
          "[batch_sim]") {
  Simulator sim({"--batch-seconds", "1", "--batch-hold", "in_progress"});
  const std::string id = create_batch(sim, upload(sim, jsonl(numbered_topics(40))));
  const auto held = wait_for(sim, id, "in_progress");
  REQUIRE(eventually([&] {
    const auto now = get_batch(sim, id);
    return now["request_counts"]["completed"].GetUint64() >= 10;
  }));
  const auto halfway = get_batch(sim, id);
  CHECK(std::string(halfway["status"].GetString()) == "in_progress");
  CHECK(halfway["request_counts"]["completed"].GetUint64() < 40);
  CHECK(halfway["output_file_id"].IsNull());
  CHECK(sim.batches_with_status("in_progress") == 1);
  sim.batch_release();
  const auto done = wait_for(sim, id, "completed");
  CHECK(done["request_counts"]["completed"].GetUint64() == 40);
}

TEST_CASE("batch: an invalid file is accepted by upload, then the batch fails with errors.data",
          "[batch_sim]") {
  Simulator sim({"--batch-seconds", "0.2"});
  std::string content = jsonl_line("a", chat_body("one"));
  content += jsonl_line("a", chat_body("duplicate id"));                       // line 2
  content += jsonl_line("c", chat_body("wrong url"), "/v1/chat/completions");  // line 3
  content += jsonl_line("d", chat_body("other model", "glm-4.6"));             // line 4
  content += "not json\n";                                                     // line 5
  content += jsonl_line("f", chat_body("[[fault:batch_fail]]"));               // line 6
  const std::string id = create_batch(sim, upload(sim, content));
  const auto failed = wait_for(sim, id, "failed");
  CHECK(failed["failed_at"].IsInt64());
  CHECK(failed["output_file_id"].IsNull());
  CHECK(failed["request_counts"]["total"].GetUint64() == 0);
  std::map<std::uint64_t, std::string> by_line;
  for (const auto& e : failed["errors"]["data"].GetArray()) {
    CHECK(e["message"].IsString());
    CHECK((e["param"].IsString() || e["param"].IsNull()));
    by_line[e["line"].GetUint64()] = e["code"].GetString();
  }
  CHECK(by_line == std::map<std::uint64_t, std::string>{{2, "duplicate_custom_id"},
                                                        {3, "invalid_url"},
                                                        {4, "mixed_models"},
                                                        {5, "invalid_json_line"},
                                                        {6, "simulated_failure"}});
  CHECK(sim.batch_stat("paid_lines") == 0);
}

TEST_CASE("batch: an expired batch keeps the lines it finished, the rest absent", "[batch_sim]") {
  Simulator sim({"--batch-seconds", "0.3"});
  std::vector<std::string> topics = numbered_topics(10);
  topics[9] += " [[fault:batch_expire]]";
  const std::string id = create_batch(sim, upload(sim, jsonl(topics)));
  const auto expired = wait_for(sim, id, "expired");
  CHECK(expired["expired_at"].IsInt64());
  CHECK(expired["completed_at"].IsNull());
  CHECK(expired["request_counts"]["completed"].GetUint64() == 5);
  REQUIRE(expired["output_file_id"].IsString());
  const auto lines = download(sim, expired["output_file_id"].GetString());
  std::set<std::string> ids;
  for (const auto& line : lines) ids.insert(line["custom_id"].GetString());
  CHECK(ids == std::set<std::string>{"request-0", "request-1", "request-2", "request-3", "request-4"});
}

TEST_CASE("batch: cancel goes cancelling then cancelled, keeping the finished lines", "[batch_sim]") {
  Simulator sim({"--batch-seconds", "1", "--batch-hold", "in_progress"});
  const std::string id = create_batch(sim, upload(sim, jsonl(numbered_topics(40))));
  wait_for(sim, id, "in_progress");
  REQUIRE(eventually([&] { return get_batch(sim, id)["request_counts"]["completed"].GetUint64() >= 10; }));
  const HttpReply cancel = api(sim, "POST", "/batches/" + id + "/cancel");
  REQUIRE(cancel.status == 200);
  const auto cancelling = parse(cancel.body);
  CHECK(std::string(cancelling["status"].GetString()) == "cancelling");
  CHECK(cancelling["cancelling_at"].IsInt64());
  const std::uint64_t finished = cancelling["request_counts"]["completed"].GetUint64();

  const auto cancelled = wait_for(sim, id, "cancelled");
  CHECK(cancelled["cancelled_at"].IsInt64());
  CHECK(cancelled["request_counts"]["completed"].GetUint64() == finished);
  REQUIRE(cancelled["output_file_id"].IsString());
  CHECK(download(sim, cancelled["output_file_id"].GetString()).size() == finished);
  CHECK(sim.batch_stat("batches_cancelled") == 1);
  // Cancelling again changes nothing; a finished batch cannot be cancelled.
  CHECK(api(sim, "POST", "/batches/" + id + "/cancel").status == 200);
  CHECK(sim.batch_stat("batches_cancelled") == 1);
  sim.batch_release();
  const std::string other = create_batch(sim, upload(sim, jsonl(numbered_topics(2))));
  wait_for(sim, other, "completed");
  const HttpReply late = api(sim, "POST", "/batches/" + other + "/cancel");
  CHECK(late.status == 400);
  CHECK(parse(late.body)["error"]["code"].IsString());
}

TEST_CASE("batch: multipart garbage gets 400 with the error envelope, and the server lives on",
          "[batch_sim]") {
  Simulator sim({"--batch-max-file-bytes", "1000"});
  const std::string multipart = "Content-Type: multipart/form-data; boundary=XyZ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Content-Type: application/json", "{}"},
      {"Content-Type: multipart/form-data", "--XyZ\r\n"},
      {multipart, ""},
      {multipart, "garbage without any boundary"},
      {multipart, "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n"},
      {multipart,
       "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\nno end"},
      {multipart, "--XyZ\r\nno colon here\r\n\r\nx\r\n--XyZ--\r\n"},
      {multipart, "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XyZ--\r\n"},
      {multipart,
       "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--XyZ\r\n"
       "Content-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{}\r\n--XyZ--\r\n"},
      {multipart, "--XyZ\r\n" + std::string(1, '\0') + "\xff\xfe\r\n\r\n--XyZ--"},
  };
  for (const auto& [content_type, body] : cases) {
    INFO(content_type << " / " << body);
    const HttpReply r =
        http_request("POST", sim.base_url() + "/files", body, {content_type, authorization()});
    CHECK(r.status == 400);
    const auto d = parse(r.body);
    CHECK(d["error"]["code"].IsString());
    CHECK(d["error"]["message"].IsString());
  }
  // Not .jsonl.
  CHECK(sim.upload_batch_file("topics.txt", jsonl({"x"})).status == 400);
  // Above the cap: HTTP 435, whether the part or the whole body is too large.
  const HttpReply big = sim.upload_batch_file("big.jsonl", std::string(1001, 'x'));
  CHECK(big.status == 435);
  CHECK(parse(big.body)["error"]["code"].IsString());
  const HttpReply huge = sim.upload_batch_file("huge.jsonl", std::string(200 * 1024, 'x'));
  CHECK(huge.status == 435);
  // Without a key: 401, as for chat completions.
  CHECK(http_request("GET", sim.base_url() + "/files").status == 401);
  CHECK(sim.batch_stat("files_uploaded") == 0);
  // Still serving.
  upload(sim, jsonl({"alive"}));
  CHECK(sim.batch_stat("files_uploaded") == 1);
}

TEST_CASE("batch: batches list newest first in pages, and files list and delete", "[batch_sim]") {
  Simulator sim({"--batch-seconds", "0"});
  std::vector<std::string> created;
  for (int i = 0; i < 5; ++i)
    created.push_back(create_batch(sim, upload(sim, jsonl({"page " + std::to_string(i)}))));
  std::vector<std::string> listed;
  std::string after;
  for (int page = 0; page < 3; ++page) {
    const HttpReply r = api(sim, "GET", "/batches?limit=2" + (after.empty() ? "" : "&after=" + after));
    REQUIRE(r.status == 200);
    const auto d = parse(r.body);
    CHECK(std::string(d["object"].GetString()) == "list");
    for (const auto& b : d["data"].GetArray()) listed.push_back(b["id"].GetString());
    CHECK(d["has_more"].GetBool() == (page < 2));
    if (d["data"].Empty()) break;
    CHECK(std::string(d["first_id"].GetString()) == d["data"][0]["id"].GetString());
    after = d["last_id"].GetString();
  }
  CHECK(listed == std::vector<std::string>(created.rbegin(), created.rend()));
  CHECK(parse(api(sim, "GET", "/batches").body)["data"].Size() == 5);  // default limit 20
  for (const char* bad : {"0", "101", "x"}) {
    const HttpReply r = api(sim, "GET", std::string("/batches?limit=") + bad);
    CHECK(r.status == 400);
  }
  CHECK(api(sim, "GET", "/batches/batch_nope").status == 404);

  const std::string kept = upload(sim, jsonl({"kept"}));
  const auto files = parse(api(sim, "GET", "/files?purpose=batch").body);
  REQUIRE(files["data"].Size() >= 1);
  CHECK(std::string(files["data"][0]["id"].GetString()) == kept);
  CHECK(api(sim, "DELETE", "/files/" + kept).status == 200);
  CHECK(api(sim, "GET", "/files/" + kept).status == 404);
  CHECK(api(sim, "GET", "/files/" + kept + "/content").status == 404);
}

TEST_CASE("batch: batch_drop_download cuts the first download midway, and a Range request resumes it",
          "[batch_sim]") {
  Simulator sim({"--batch-seconds", "0"});
  std::vector<std::string> topics = numbered_topics(30);
  topics[0] += " [[fault:batch_drop_download]]";
  const auto done = wait_for(sim, create_batch(sim, upload(sim, jsonl(topics))), "completed");
  const std::string output = done["output_file_id"].GetString();
  const std::string path = "/api/paas/v4/files/" + output + "/content";

  // The first download: the head promises the whole file, half arrives, then the connection resets.
  const std::string cut = raw_exchange(sim.port(), "GET " + path + " HTTP/1.1\r\nHost: x\r\n" +
                                                       authorization() + "\r\nConnection: close\r\n\r\n");
  const std::size_t head_end = cut.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  const std::string partial = cut.substr(head_end + 4);

  const HttpReply whole = api(sim, "GET", "/files/" + output + "/content");
  REQUIRE(whole.status == 200);
  REQUIRE(partial.size() < whole.body.size());
  CHECK(whole.body.starts_with(partial));
  const HttpReply rest = api(sim, "GET", "/files/" + output + "/content", {},
                             {"Range: bytes=" + std::to_string(partial.size()) + "-"});
  CHECK(rest.status == 206);
  CHECK(rest.headers.find("Content-Range: bytes " + std::to_string(partial.size()) + "-") !=
        std::string::npos);
  CHECK(partial + rest.body == whole.body);
  CHECK(api(sim, "GET", "/files/" + output + "/content", {}, {"Range: bytes=999999999-"}).status == 416);
}

TEST_CASE("batch: held uploads and downloads show in the stats until released", "[batch_sim]") {
  Simulator sim({"--batch-seconds", "0", "--batch-hold", "upload"});
  HttpReply uploaded;
  std::thread client([&] { uploaded = sim.upload_batch_file("held.jsonl", jsonl(numbered_topics(3))); });
  const bool stored_not_answered = eventually(
      [&] { return sim.batch_stat("uploads_held") == 1 && sim.batch_stat("files_uploaded") == 1; });
  CHECK(sim.batch_stat("uploads_in_progress") == 1);
  sim.batch_release();
  client.join();
  REQUIRE(stored_not_answered);
  REQUIRE(uploaded.status == 200);
  CHECK(sim.batch_stat("uploads_in_progress") == 0);
  CHECK(sim.batch_stat("uploads_held") == 0);

  const auto done = wait_for(sim, create_batch(sim, parse(uploaded.body)["id"].GetString()), "completed");
  sim.batch_hold("download");
  HttpReply downloaded;
  std::thread reader([&] {
    downloaded = api(sim, "GET", std::string("/files/") + done["output_file_id"].GetString() + "/content");
  });
  const bool held = eventually([&] { return sim.batch_stat("downloads_in_progress") == 1; });
  sim.batch_release();
  reader.join();
  REQUIRE(held);
  CHECK(downloaded.status == 200);
  CHECK(std::count(downloaded.body.begin(), downloaded.body.end(), '\n') == 3);
  CHECK(sim.batch_stat("downloads_in_progress") == 0);
}
