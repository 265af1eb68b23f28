// --via batch end to end against the simulator's Batch API (docs/protocol.md, "Batch API"; README
// "Cheaper runs"): the same report as online; files split at --batch-max-lines; kill -9 during the
// upload, the polling and the download, then --resume, ends with every topic once and every line paid
// once; TERM while polling leaves the batch running (or cancels it); expired and failed batches; error
// lines classified as online; a dry run counts the lines a real run uploads.
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;
namespace fs = std::filesystem;

namespace {

#ifdef CBM_TEST_SANITIZED
constexpr int kManyTopics = 400;
#else
constexpr int kManyTopics = 2000;
#endif

constexpr const char* kPrices = R"({"currency": "CNY", "date": "2031-01-02",
  "models": {"glm-4.5-air": {"input_per_million": 1000, "output_per_million": 2000}},
  "search_per_call": {"search_std": 0}})";

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  INFO(text.substr(0, 2000));
  REQUIRE_FALSE(d.HasParseError());
  REQUIRE(d.IsObject());
  return d;
}

rapidjson::Document report_of(const TempDir& dir, const std::string& name = "report.json") {
  return parse_json(read_text(dir / name));
}

std::vector<std::string> base_args(const Simulator& sim, const std::string& mode) {
  return {supervisor_path(), "--base-url", sim.base_url(), "--delay", "0", "--mode", mode, "--quiet"};
}

struct Finished {
  int status = -1;
  std::string err;
};

Finished run_cli(const Simulator& sim, const TempDir& dir, const std::string& mode, const std::vector<std::string>& args) {
  auto argv = base_args(sim, mode);
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p(argv, supervisor_spawn_options(dir.path()));
  Finished f;
  f.status = p.exit_code(120s);
  f.err = p.err();
  return f;
}

void write_topics(const TempDir& dir, int n, const std::string& extra = {}) {
  std::string text;
  for (int i = 0; i < n; ++i) text += "batch topic " + std::to_string(i) + "\n";
  text += extra;
  write_text(dir / "topics.txt", text);
}

std::set<std::string> keys_of(const rapidjson::Value& o) {
  std::set<std::string> keys;
  for (const auto& m : o.GetObject()) keys.insert(m.name.GetString());
  return keys;
}

// Topic -> how many records, and the succeeded count.
std::map<std::string, int> records_by_topic(const rapidjson::Value& report) {
  std::map<std::string, int> by;
  for (const auto& r : report["results"].GetArray()) ++by[r["topic"].GetString()];
  return by;
}

int succeeded(const rapidjson::Value& report) { return report["summary"]["successful_tasks"].GetInt(); }

const rapidjson::Value* result_for(const rapidjson::Value& report, const std::string& topic_part) {
  for (const auto& r : report["results"].GetArray()) {
    if (std::string(r["topic"].GetString()).find(topic_part) != std::string::npos) return &r;
  }
  return nullptr;
}

std::string text_of(const rapidjson::Value& v, const char* key) {
  const auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

}  // namespace

TEST_CASE("a big run via batch gives the report an online run gives, each line uploaded and paid once",
          "[batch][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  Simulator sim({"--batch-seconds", "0.5"});
  TempDir online;
  TempDir batch;
  for (const TempDir* d : {&online, &batch}) {
    write_topics(*d, kManyTopics);
    write_text(*d / "prices.json", kPrices);
  }
  REQUIRE(run_cli(sim, online, mode,
                  {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--price-file", "prices.json"})
              .status == 0);
  sim.reset_stats();
  const Finished f = run_cli(sim, batch, mode,
                             {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--price-file",
                              "prices.json", "--via", "batch"});
  INFO(f.err);
  REQUIRE(f.status == 0);
  CHECK(sim.requests_total() == 0);  // nothing went online
  CHECK(sim.batch_stat("files_uploaded") == 1);
  CHECK(sim.batch_stat("lines_uploaded") == kManyTopics);
  CHECK(sim.batch_stat("paid_lines") == kManyTopics);
  const auto a = report_of(online);
  const auto b = report_of(batch);
  CHECK(keys_of(a["summary"]) == keys_of(b["summary"]));
  REQUIRE(b["results"].Size() == static_cast<rapidjson::SizeType>(kManyTopics));
  CHECK(succeeded(b) == kManyTopics);
  CHECK(keys_of(a["results"][0]) == keys_of(b["results"][0]));
  // A step a batch answered names it, and is priced at half the list price.
  auto batch_step = keys_of(b["results"][0]["steps"][0]);
  CHECK(batch_step.erase("batch_id") == 1);
  CHECK(keys_of(a["results"][0]["steps"][0]) == batch_step);
  const double online_cost = a["summary"]["estimated_cost"]["amount"].GetDouble();
  CHECK(online_cost > 0);
  CHECK(b["summary"]["estimated_cost"]["amount"].GetDouble() == Approx(online_cost / 2));
  CHECK(a["results"][0]["usage"]["total_tokens"].GetInt64() == b["results"][0]["usage"]["total_tokens"].GetInt64());
}

TEST_CASE("via batch, the search step runs online first and the analysis goes in the file", "[batch]") {
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir dir;
  write_topics(dir, 30);
  const Finished f = run_cli(sim, dir, "asyncio",
                             {"--topics-file", "topics.txt", "--search-via", "api", "--output", "report.json",
                              "--via", "batch"});
  INFO(f.err);
  REQUIRE(f.status == 0);
  const auto searches = sim.recent_requests();  // what went online: the searches, and only them
  CHECK(searches.size() == 30);
  for (const auto& r : searches) CHECK(r.is_web_search());
  CHECK(sim.batch_stat("lines_uploaded") == 30);
  const auto r = report_of(dir);
  CHECK(succeeded(r) == 30);
  CHECK(r["results"][0]["sources"].Size() > 0);
}

TEST_CASE("lines beyond --batch-max-lines go into more files, one batch each, and --timeout ends no line",
          "[batch]") {
  Simulator sim({"--batch-seconds", "1"});
  TempDir dir;
  write_topics(dir, 250);
  // Each batch takes a second: far over --timeout, which is the online steps' only.
  const Finished f = run_cli(sim, dir, "asyncio",
                             {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--via", "batch",
                              "--batch-max-lines", "100", "--timeout", "0.2"});
  INFO(f.err);
  REQUIRE(f.status == 0);
  CHECK(sim.batch_stat("files_uploaded") == 3);
  CHECK(sim.batch_stat("batches_created") == 3);
  CHECK(sim.batch_stat("paid_lines") == 250);
  CHECK(succeeded(report_of(dir)) == 250);
}

TEST_CASE("a --batch-max-lines outside 1 to 50000 is a usage error naming the flag", "[batch]") {
  Simulator sim;
  TempDir dir;
  const Finished f = run_cli(sim, dir, "asyncio", {"--topics", "x", "--via", "batch", "--batch-max-lines", "50001"});
  CHECK(f.status == 2);
  CHECK(f.err.find("--batch-max-lines") != std::string::npos);
  const Finished s = run_cli(sim, dir, "asyncio", {"--topics", "x", "--via", "batch", "--stream"});
  CHECK(s.status == 2);
  CHECK(s.err.find("--via") != std::string::npos);
}

TEST_CASE("kill -9 during the upload, the polling or the download, then --resume: every topic once, "
          "every line paid once",
          "[batch][resume]") {
  const std::string phase = GENERATE(as<std::string>{}, "upload", "in_progress", "download");
  INFO("held at " << phase);
  constexpr int kTopics = 60;
  Simulator sim({"--batch-seconds", "0.5"});
  TempDir dir;
  write_topics(dir, kTopics);
  const std::vector<std::string> args = {"--topics-file", "topics.txt", "--no-search", "--output", "report.json",
                                         "--via", "batch"};
  sim.batch_hold(phase);
  {
    auto argv = base_args(sim, "asyncio");
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p(argv, supervisor_spawn_options(dir.path()));
    const bool reached = eventually([&] {
      if (phase == "upload") return sim.batch_stat("uploads_in_progress") > 0;
      if (phase == "download") return sim.batch_stat("downloads_in_progress") > 0;
      return sim.batches_with_status(phase) > 0;
    });
    REQUIRE(reached);
    p.signal(SIGKILL);
    (void)p.exit_code(10s);
  }
  sim.batch_release();
  auto resume = args;
  resume.push_back("--resume");
  const Finished f = run_cli(sim, dir, "asyncio", resume);
  INFO(f.err);
  REQUIRE(f.status == 0);
  const auto r = report_of(dir);
  const auto by_topic = records_by_topic(r);
  CHECK(by_topic.size() == static_cast<std::size_t>(kTopics));
  for (const auto& [topic, n] : by_topic) CHECK(n == 1);
  CHECK(succeeded(r) == kTopics);
  CHECK(sim.batch_stat("paid_lines") == kTopics);
  CHECK(sim.batch_stat("batches_created") == 1);
}

TEST_CASE("TERM while a batch runs: exit 143, the report names the batch, the batch goes on, "
          "and --resume collects it",
          "[batch][signals]") {
  constexpr int kTopics = 20;
  Simulator sim({"--batch-seconds", "0.5"});
  TempDir dir;
  write_topics(dir, kTopics);
  const std::vector<std::string> args = {"--topics-file", "topics.txt", "--no-search", "--output", "report.json",
                                         "--via", "batch"};
  sim.batch_hold("in_progress");
  {
    auto argv = base_args(sim, "asyncio");
    argv.pop_back();  // not --quiet: the final line is checked
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p(argv, supervisor_spawn_options(dir.path()));
    REQUIRE(eventually([&] { return sim.batches_with_status("in_progress") > 0; }));
    p.signal(SIGTERM);
    CHECK(p.exit_code(30s) == 143);
    CHECK(p.err().find("--resume") != std::string::npos);
  }
  const auto stopped = report_of(dir);
  CHECK(stopped["summary"]["cancelled_tasks"].GetInt() == kTopics);
  CHECK(text_of(stopped["results"][0], "error_message").find("batch_") != std::string::npos);
  CHECK(sim.batch_stat("batches_cancelled") == 0);
  CHECK(sim.batches_with_status("in_progress") == 1);  // left running
  sim.batch_release();
  auto resume = args;
  resume.push_back("--resume");
  const Finished f = run_cli(sim, dir, "asyncio", resume);
  INFO(f.err);
  REQUIRE(f.status == 0);
  CHECK(succeeded(report_of(dir)) == kTopics);
  CHECK(sim.batch_stat("paid_lines") == kTopics);
}

TEST_CASE("TERM with --cancel-batch-on-stop cancels the batch", "[batch][signals]") {
  Simulator sim({"--batch-seconds", "0.5"});
  TempDir dir;
  write_topics(dir, 10);
  sim.batch_hold("in_progress");
  auto argv = base_args(sim, "asyncio");
  for (const char* a : {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--via", "batch",
                        "--cancel-batch-on-stop"}) {
    argv.emplace_back(a);
  }
  Subprocess p(argv, supervisor_spawn_options(dir.path()));
  REQUIRE(eventually([&] { return sim.batches_with_status("in_progress") > 0; }));
  p.signal(SIGTERM);
  CHECK(p.exit_code(30s) == 143);
  CHECK(sim.batch_stat("batches_cancelled") == 1);
  const auto r = report_of(dir);
  CHECK(r["summary"]["cancelled_tasks"].GetInt() == 10);
  CHECK(text_of(r["results"][0], "error_message").find("cancelled (--cancel-batch-on-stop)") != std::string::npos);
  sim.batch_release();
}

TEST_CASE("an expired batch keeps its answered lines and the rest follow --batch-retry", "[batch]") {
  const std::string retry = GENERATE(as<std::string>{}, "online", "none");
  INFO("--batch-retry " << retry);
  constexpr int kTopics = 20;
  Simulator sim({"--batch-seconds", "0.5"});
  TempDir dir;
  write_topics(dir, kTopics - 1, "expiring [[fault:batch_expire]]\n");
  const Finished f = run_cli(sim, dir, "asyncio",
                             {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--via", "batch",
                              "--batch-retry", retry});
  INFO(f.err);
  const auto r = report_of(dir);
  CHECK(sim.batches_with_status("expired") == 1);
  CHECK(sim.batch_stat("batches_created") == 1);
  REQUIRE(r["results"].Size() == static_cast<rapidjson::SizeType>(kTopics));
  if (retry == "online") {
    CHECK(f.status == 0);
    CHECK(succeeded(r) == kTopics);
    CHECK(sim.requests_total() > 0);          // the unanswered ones went online
    CHECK(sim.requests_total() < kTopics);    // the answered ones were kept
  } else {
    CHECK(f.status == 1);
    CHECK(succeeded(r) > 0);
    CHECK(succeeded(r) < kTopics);
    CHECK(sim.requests_total() == 0);
    const auto* failed = result_for(r, "expiring");
    if (failed != nullptr && !(*failed)["success"].GetBool()) {
      CHECK(text_of(*failed, "error_message").find("expired") != std::string::npos);
    }
  }
}

TEST_CASE("a batch that fails validation fails its tasks, naming the batch", "[batch]") {
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir dir;
  write_topics(dir, 4, "refused [[fault:batch_fail]]\n");
  const Finished f = run_cli(sim, dir, "asyncio",
                             {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--via", "batch"});
  INFO(f.err);
  CHECK(f.status == 1);
  const auto r = report_of(dir);
  CHECK(r["summary"]["failed_tasks"].GetInt() == 5);
  CHECK(text_of(r["results"][0], "error_message").find("failed validation") != std::string::npos);
  CHECK(sim.batch_stat("paid_lines") == 0);
  CHECK(sim.batch_stat("batches_created") == 1);  // a refused file is not sent again (task_fatal)
}

TEST_CASE("error lines are classified as the same errors online", "[batch]") {
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir online;
  TempDir batch;
  for (const TempDir* d : {&online, &batch}) write_topics(*d, 3, "blocked [[fault:400_1301]]\n");
  const std::vector<std::string> args = {"--topics-file", "topics.txt", "--no-search", "--output", "report.json"};
  REQUIRE(run_cli(sim, online, "asyncio", args).status == 1);
  auto via = args;
  via.insert(via.end(), {"--via", "batch"});
  const Finished f = run_cli(sim, batch, "asyncio", via);
  INFO(f.err);
  REQUIRE(f.status == 1);
  const auto a = report_of(online);
  const auto b = report_of(batch);
  const auto* ra = result_for(a, "blocked");
  const auto* rb = result_for(b, "blocked");
  REQUIRE(ra != nullptr);
  REQUIRE(rb != nullptr);
  CHECK_FALSE((*rb)["success"].GetBool());
  REQUIRE((*rb)["error"].IsObject());
  for (const char* key : {"class", "kind", "code"}) {
    INFO(key);
    CHECK(text_of((*ra)["error"], key) == text_of((*rb)["error"], key));
  }
  CHECK((*ra)["error"]["http_status"].GetInt() == (*rb)["error"]["http_status"].GetInt());
  CHECK((*ra)["attempts"].GetInt() == (*rb)["attempts"].GetInt());
  CHECK(succeeded(b) == 3);
}

TEST_CASE("a dry run via batch sends nothing and counts the lines the real run uploads", "[batch][dry-run]") {
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir dir;
  write_topics(dir, 25, "batch topic 3\n");  // a repeat: reported as a copy, not sent
  const std::vector<std::string> args = {"--topics-file", "topics.txt", "--no-search", "--via", "batch"};
  auto dry = args;
  dry.insert(dry.end(), {"--dry-run", "--output", "estimate.json"});
  REQUIRE(run_cli(sim, dir, "asyncio", dry).status == 0);
  CHECK(sim.batch_stat("files_uploaded") == 0);
  CHECK(sim.requests_total() == 0);
  const auto estimate = parse_json(read_text(dir / "estimate.json"));
  std::int64_t requests = 0;
  for (const auto& s : estimate["requests"].GetArray()) requests += s["requests"].GetInt64();
  auto real = args;
  real.insert(real.end(), {"--output", "report.json"});
  REQUIRE(run_cli(sim, dir, "asyncio", real).status == 0);
  CHECK(requests == sim.batch_stat("lines_uploaded"));
  CHECK(requests == 25);
}

namespace {

// Starts a --via batch run on `args`, waits for `reached`, and kills it (kill -9).
void kill_when(const Simulator& sim, const TempDir& dir, const std::vector<std::string>& args,
               const std::function<bool()>& reached) {
  auto argv = base_args(sim, "asyncio");
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p(argv, supervisor_spawn_options(dir.path()));
  REQUIRE(eventually(reached));
  p.signal(SIGKILL);
  (void)p.exit_code(10s);
}

void check_every_topic_once(const rapidjson::Value& report, int topics) {
  const auto by_topic = records_by_topic(report);
  CHECK(by_topic.size() == static_cast<std::size_t>(topics));
  for (const auto& [topic, n] : by_topic) CHECK(n == 1);
}

HttpReply batch_api_call(const Simulator& sim, const std::string& method, const std::string& path) {
  return http_request(method, sim.base_url() + path, {}, {std::string("Authorization: Bearer ") + kTestKey});
}

}  // namespace

TEST_CASE("a create whose answer is lost is looked up by its metadata: one batch, each line paid once",
          "[batch]") {
  constexpr int kTopics = 20;
  Simulator sim({"--batch-seconds", "0.5"});
  TempDir dir;
  write_topics(dir, kTopics - 1, "lost answer [[fault:batch_create_lost]]\n");
  const Finished f =
      run_cli(sim, dir, "asyncio",
              {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--via", "batch"});
  INFO(f.err);
  REQUIRE(f.status == 0);
  const auto r = report_of(dir);
  check_every_topic_once(r, kTopics);
  CHECK(succeeded(r) == kTopics);
  CHECK(sim.batch_stat("files_uploaded") == 1);
  CHECK(sim.batch_stat("batches_created") == 1);
  CHECK(sim.batch_stat("paid_lines") == kTopics);
}

TEST_CASE(
    "resuming with --via online a journal with lines in a running batch is refused with exit 2, "
    "and --via batch then collects them once",
    "[batch][resume]") {
  constexpr int kTopics = 20;
  Simulator sim({"--batch-seconds", "0.5"});
  TempDir dir;
  write_topics(dir, kTopics);
  const std::vector<std::string> args = {"--topics-file", "topics.txt", "--no-search", "--output",
                                         "report.json"};
  auto via_batch = args;
  via_batch.insert(via_batch.end(), {"--via", "batch"});
  sim.batch_hold("in_progress");
  kill_when(sim, dir, via_batch, [&] { return sim.batches_with_status("in_progress") > 0; });
  auto online = args;
  online.push_back("--resume");
  const Finished refused = run_cli(sim, dir, "asyncio", online);
  INFO(refused.err);
  CHECK(refused.status == 2);
  CHECK(refused.err.find("--via batch") != std::string::npos);
  CHECK(sim.requests_total() == 0);  // nothing went online
  sim.batch_release();
  via_batch.push_back("--resume");
  const Finished f = run_cli(sim, dir, "asyncio", via_batch);
  INFO(f.err);
  REQUIRE(f.status == 0);
  const auto r = report_of(dir);
  check_every_topic_once(r, kTopics);
  CHECK(succeeded(r) == kTopics);
  CHECK(sim.requests_total() == 0);
  CHECK(sim.batch_stat("batches_created") == 1);
  CHECK(sim.batch_stat("paid_lines") == kTopics);
}

TEST_CASE("an answer longer than the line cap fails its task as online would, and the rest are collected",
          "[batch]") {
  constexpr int kTopics = 6;
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir dir;
  write_topics(dir, kTopics - 1, "too long [[fault:oversize]]\n");
  const Finished f =
      run_cli(sim, dir, "asyncio",
              {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--via", "batch"});
  INFO(f.err);
  CHECK(f.status == 1);
  const auto r = report_of(dir);
  check_every_topic_once(r, kTopics);
  CHECK(succeeded(r) == kTopics - 1);
  const auto* failed = result_for(r, "too long");
  REQUIRE(failed != nullptr);
  CHECK_FALSE((*failed)["success"].GetBool());
  CHECK(text_of((*failed)["error"], "kind") == "protocol");
  CHECK(text_of((*failed)["error"], "class") == "task_fatal");
  CHECK(text_of(*failed, "error_message").find("longer than") != std::string::npos);
  CHECK(sim.batch_stat("batches_created") == 1);  // not retried: it would be as long again
  CHECK(sim.batch_stat("paid_lines") == kTopics);
}

TEST_CASE(
    "an output file that cannot be downloaded (404) fails the batch's lines at once, naming it, "
    "without a second batch",
    "[batch]") {
  constexpr int kTopics = 5;
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir dir;
  write_topics(dir, kTopics - 1, "lost output [[fault:batch_lost_output]]\n");
  const Finished f =
      run_cli(sim, dir, "asyncio",
              {"--topics-file", "topics.txt", "--no-search", "--output", "report.json", "--via", "batch"});
  INFO(f.err);
  CHECK(f.status == 1);
  const auto r = report_of(dir);
  check_every_topic_once(r, kTopics);
  CHECK(r["summary"]["failed_tasks"].GetInt() == kTopics);
  CHECK(text_of(r["results"][0], "error_message").find("downloading file") != std::string::npos);
  CHECK(sim.batch_stat("batches_created") == 1);
  CHECK(sim.batch_stat("paid_lines") == kTopics);
}

TEST_CASE(
    "resuming a file the server does not have, with lines whose attempts start later, "
    "sends each line once",
    "[batch][resume]") {
  constexpr int kTopics = 30;
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir dir;
  write_topics(dir, kTopics);
  std::vector<std::string> args = {"--topics-file", "topics.txt", "--no-search", "--output",
                                   "report.json",   "--via",      "batch",       "--batch-max-lines"};
  auto first = args;
  first.emplace_back("10");
  sim.batch_hold("upload");
  kill_when(sim, dir, first, [&] { return sim.batch_stat("uploads_held") > 0; });
  sim.batch_release();
  // The upload never got its id, and the file is gone: --resume finds no file of that name.
  const auto files = parse_json(batch_api_call(sim, "GET", "/files?purpose=batch&limit=100").body);
  int deleted = 0;
  for (const auto& file : files["data"].GetArray()) {
    if (std::string(file["filename"].GetString()).rfind("cbm-", 0) != 0) continue;
    CHECK(batch_api_call(sim, "DELETE", std::string("/files/") + file["id"].GetString()).status == 200);
    ++deleted;
  }
  REQUIRE(deleted == 1);
  // Fewer slots than the file has lines: some of its lines start after it is found missing.
  auto resume = args;
  resume.insert(resume.end(), {"4", "--resume", "--log-file", "run.log"});
  const Finished f = run_cli(sim, dir, "asyncio", resume);
  INFO(f.err);
  REQUIRE(f.status == 0);
  const auto r = report_of(dir);
  check_every_topic_once(r, kTopics);
  CHECK(succeeded(r) == kTopics);
  CHECK(sim.batch_stat("paid_lines") == kTopics);
  // The lines found unsent go out in the turn that finds them, not after the loop's idle wake (60 s
  // with --quiet): the log's times of the two events, seconds of the day.
  const std::string log = read_text(dir / "run.log");
  INFO(log);
  const auto seconds_at = [&](std::size_t event) {
    const std::size_t line = log.rfind('\n', event) + 1;  // npos + 1 == 0 on the first line
    return std::stod(log.substr(line + 11, 2)) * 3600 + std::stod(log.substr(line + 14, 2)) * 60 +
           std::stod(log.substr(line + 17, 6));
  };
  const std::size_t missing = log.find("was not uploaded: its lines go into a new file");
  REQUIRE(missing != std::string::npos);
  const std::size_t upload = log.find(": uploading ", missing);
  REQUIRE(upload != std::string::npos);
  CHECK(std::fmod(seconds_at(upload) - seconds_at(missing) + 86400, 86400) < 30);
}

TEST_CASE("TERM during an upload stops the run without waiting for it, and --resume pays each line once",
          "[batch][signals]") {
  constexpr int kTopics = 10;
  Simulator sim({"--batch-seconds", "0.2"});
  TempDir dir;
  write_topics(dir, kTopics);
  const std::vector<std::string> args = {"--topics-file", "topics.txt", "--no-search", "--output",
                                         "report.json",   "--via",      "batch"};
  sim.batch_hold("upload");
  {
    auto argv = base_args(sim, "asyncio");
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p(argv, supervisor_spawn_options(dir.path()));
    REQUIRE(eventually([&] { return sim.batch_stat("uploads_held") > 0; }));
    p.signal(SIGTERM);
    // The hold never ends by itself: the run ends only if it stops waiting for the upload (or the
    // upload times out as too slow, which the records would say).
    CHECK(p.exit_code(60s) == 143);
  }
  const auto stopped = report_of(dir);
  CHECK(stopped["summary"]["cancelled_tasks"].GetInt() == kTopics);
  CHECK(text_of(stopped["results"][0], "error_message").find("the run stopped before batch file") !=
        std::string::npos);
  CHECK(sim.batch_stat("batches_created") == 0);
  sim.batch_release();
  auto resume = args;
  resume.push_back("--resume");
  const Finished f = run_cli(sim, dir, "asyncio", resume);
  INFO(f.err);
  REQUIRE(f.status == 0);
  const auto r = report_of(dir);
  check_every_topic_once(r, kTopics);
  CHECK(succeeded(r) == kTopics);
  CHECK(sim.batch_stat("batches_created") == 1);
  CHECK(sim.batch_stat("paid_lines") == kTopics);
}
