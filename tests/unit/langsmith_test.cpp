#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "langsmith_run.hpp"
#include "langsmith_settings.hpp"
#include "result_codec.hpp"

using namespace std::chrono_literals;

namespace {

// 2025-01-02T03:04:05.123456Z
const cbm::WallClock::time_point kT{std::chrono::duration_cast<cbm::WallClock::duration>(1735787045123456us)};

cbm::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_CASE("dotted_order stamps and run times are UTC with microseconds and a zone", "[langsmith]") {
  CHECK(cbm::dotted_order_stamp(kT) == "20250102T030405123456Z");
  CHECK(cbm::iso8601_us(kT) == "2025-01-02T03:04:05.123456Z");
  CHECK(cbm::dotted_order_stamp(kT + 876544us) == "20250102T030406000000Z");
}

TEST_CASE("a UUID v7 carries its millisecond, version 7 and the RFC variant, and later ids sort later",
          "[langsmith]") {
  const std::string id = cbm::uuid_v7(kT);
  REQUIRE(id.size() == 36);
  CHECK(id[8] == '-');
  CHECK(id[13] == '-');
  CHECK(id[18] == '-');
  CHECK(id[23] == '-');
  CHECK(id.substr(0, 8) + id.substr(9, 4) == "019424f86103");  // 1735787045123 ms in hex
  CHECK(id.substr(14, 4) == "774b");  // version 7, then 456 us as 12 bits of a millisecond (0x74b)
  CHECK(std::string("89ab").find(id[19]) != std::string::npos);
  CHECK(id.find_first_not_of("0123456789abcdef-") == std::string::npos);

  std::set<std::string> ids;
  std::string previous;
  for (int i = 0; i < 1000; ++i) {
    const std::string next = cbm::uuid_v7(kT + std::chrono::microseconds(i * 300));
    if (!previous.empty() && next.substr(0, 18) != previous.substr(0, 18)) CHECK(next > previous);
    ids.insert(next);
    previous = next;
  }
  CHECK(ids.size() == 1000);
}

TEST_CASE("a child run extends its parent's dotted_order and never starts before it", "[langsmith]") {
  const cbm::LangSmithRun root = cbm::root_run("topic_analysis", "chain", kT + 789ns);
  CHECK(root.trace_id == root.id);
  CHECK(root.start_time == kT);  // kept to the microsecond, like its stamp
  CHECK(root.dotted_order == "20250102T030405123456Z" + root.id);
  CHECK(root.is_root());

  const cbm::LangSmithRun child = cbm::child_run(root, "search", "llm", kT + 2ms);
  CHECK(child.trace_id == root.id);
  CHECK(child.parent_run_id == root.id);
  CHECK(child.dotted_order == root.dotted_order + ".20250102T030405125456Z" + child.id);

  // A worker's clock a little behind the supervisor's.
  const cbm::LangSmithRun early = cbm::child_run(root, "search", "llm", kT - 5ms);
  CHECK(early.start_time == root.start_time);
  CHECK(early.dotted_order == root.dotted_order + ".20250102T030405123456Z" + early.id);
}

TEST_CASE("a run's post carries every field and its patch only identity and ending", "[langsmith]") {
  cbm::LangSmithRun run = cbm::root_run("topic_analysis", "chain", kT);
  run.inputs = R"({"topic":"t"})";
  run.end_time = kT + 1s;
  run.error = "crash: worker 0 killed";
  rapidjson::StringBuffer buf;
  cbm::JsonWriter w(buf);
  w.StartArray();
  cbm::write_run_post(w, run, "proj");
  cbm::write_run_patch(w, run);
  w.EndArray();
  rapidjson::Document d;
  d.Parse(buf.GetString());
  REQUIRE_FALSE(d.HasParseError());
  const auto& post = d[0];
  CHECK(std::string(post["session_name"].GetString()) == "proj");
  CHECK(std::string(post["run_type"].GetString()) == "chain");
  CHECK(std::string(post["start_time"].GetString()) == "2025-01-02T03:04:05.123456Z");
  CHECK(std::string(post["end_time"].GetString()) == "2025-01-02T03:04:06.123456Z");
  CHECK(std::string(post["inputs"]["topic"].GetString()) == "t");
  CHECK_FALSE(post.HasMember("parent_run_id"));
  const auto& patch = d[1];
  CHECK(std::string(patch["id"].GetString()) == run.id);
  CHECK(std::string(patch["error"].GetString()) == "crash: worker 0 killed");
  CHECK_FALSE(patch.HasMember("inputs"));
  CHECK_FALSE(patch.HasMember("start_time"));
}

TEST_CASE("LangSmith settings are read the way its SDK reads them", "[langsmith][config]") {
  using Vars = std::map<std::string, std::string>;
  auto read = [](Vars vars) { return cbm::langsmith_settings(env_of(std::move(vars)), false); };

  SECTION("off unless TRACING is exactly true") {
    CHECK_FALSE(read({}).value());
    CHECK_FALSE(read({{"LANGSMITH_TRACING", "True"}, {"LANGSMITH_API_KEY", "k"}}).value());
    CHECK_FALSE(read({{"LANGSMITH_TRACING", "1"}, {"LANGSMITH_API_KEY", "k"}}).value());
    CHECK_FALSE(read({{"LANGSMITH_TRACING_V2", "false"}, {"LANGSMITH_TRACING", "true"}, {"LANGSMITH_API_KEY", "k"}})
                    .value());
  }
  SECTION("on with the defaults") {
    auto s = read({{"LANGSMITH_TRACING", "true"}, {"LANGSMITH_API_KEY", "k"}});
    REQUIRE(s.value());
    CHECK(s.value()->endpoint == "https://api.smith.langchain.com");
    CHECK(s.value()->project == "default");
    CHECK(s.value()->api_key == "k");
  }
  SECTION("LANGCHAIN_ names when the LANGSMITH_ ones are unset or empty") {
    auto s = read({{"LANGCHAIN_TRACING_V2", "true"},
                   {"LANGCHAIN_API_KEY", "lc"},
                   {"LANGSMITH_PROJECT", ""},
                   {"LANGCHAIN_PROJECT", "legacy"},
                   {"LANGSMITH_ENDPOINT", "https://eu.api.smith.langchain.com/"}});
    REQUIRE(s.value());
    CHECK(s.value()->api_key == "lc");
    CHECK(s.value()->project == "legacy");
    CHECK(s.value()->endpoint == "https://eu.api.smith.langchain.com");
  }
  SECTION("LANGSMITH_ names win") {
    auto s = read({{"LANGSMITH_TRACING", "true"},
                   {"LANGCHAIN_TRACING", "false"},
                   {"LANGSMITH_API_KEY", "ls"},
                   {"LANGCHAIN_API_KEY", "lc"}});
    REQUIRE(s.value());
    CHECK(s.value()->api_key == "ls");
  }
  SECTION("a local endpoint needs no key; a remote one does") {
    auto local = read({{"LANGSMITH_TRACING", "true"}, {"LANGSMITH_ENDPOINT", "http://127.0.0.1:1984"}});
    REQUIRE(local.ok());
    REQUIRE(local.value());
    CHECK(local.value()->api_key.empty());
    auto remote = read({{"LANGSMITH_TRACING", "true"}});
    REQUIRE_FALSE(remote.ok());
    CHECK_THAT(remote.error(), Catch::Contains("LANGSMITH_API_KEY"));
  }
  SECTION("workspace, hidden parts and sampling rate, as the SDK reads them") {
    Vars on = {{"LANGSMITH_TRACING", "true"}, {"LANGSMITH_API_KEY", "k"}};
    auto plain = read(on);
    REQUIRE(plain.value());
    CHECK(plain.value()->workspace_id.empty());
    CHECK_FALSE(plain.value()->hide_inputs);
    CHECK(plain.value()->sampling_rate == 1.0);
    Vars set = on;
    set.insert({{"LANGCHAIN_WORKSPACE_ID", "ws"}, {"LANGSMITH_HIDE_INPUTS", "True"}, {"LANGSMITH_HIDE_OUTPUTS", "1"},
                {"LANGSMITH_HIDE_METADATA", "true"}, {"LANGSMITH_TRACING_SAMPLING_RATE", "0.25"}});
    auto s = read(set);
    REQUIRE(s.value());
    CHECK(s.value()->workspace_id == "ws");
    CHECK(s.value()->hide_inputs);
    CHECK_FALSE(s.value()->hide_outputs);  // only "true", in any case, switches it on
    CHECK(s.value()->hide_metadata);
    CHECK(s.value()->sampling_rate == 0.25);
    for (const char* bad : {"-0.1", "1.01", "half", "0.5x", "nan"}) {
      Vars v = on;
      v["LANGSMITH_TRACING_SAMPLING_RATE"] = bad;
      auto refused = read(v);
      REQUIRE_FALSE(refused.ok());
      CHECK_THAT(refused.error(), Catch::Contains(std::string("LANGSMITH_TRACING_SAMPLING_RATE: '") + bad + "'"));
    }
  }
  SECTION("plain http to a remote host needs --allow-insecure-http; the key is never in the message") {
    Vars vars = {{"LANGSMITH_TRACING", "true"},
                 {"LANGSMITH_API_KEY", "ls-SECRET"},
                 {"LANGSMITH_ENDPOINT", "http://smith.example.com"}};
    auto refused = read(vars);
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error(), Catch::Contains("LANGSMITH_ENDPOINT") && Catch::Contains("--allow-insecure-http"));
    CHECK(refused.error().find("SECRET") == std::string::npos);
    CHECK(cbm::langsmith_settings(env_of(vars), true).ok());
    auto bad = read({{"LANGSMITH_TRACING", "true"}, {"LANGSMITH_API_KEY", "k"}, {"LANGCHAIN_ENDPOINT", "smith"}});
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error(), Catch::Contains("LANGCHAIN_ENDPOINT: 'smith'"));
  }
}

TEST_CASE("a step's start, messages and output cross the wire when traced, and stay out of the report", "[codec][langsmith]") {
  cbm::AttemptOutcome o;
  o.analysis = "a";
  cbm::StepRecord step{"search",
                       "glm-4.5-air",
                       "stop",
                       {3, 4, 7},
                       250ms,
                       kT,
                       {{"system", "s"}, {"user", "u"}},
                       "found",
                       {},
                       {},
                       {}};
  o.steps = {step};
  auto m = cbm::decode_outcome(cbm::encode_outcome(1, 1, o, true));
  REQUIRE(m.ok());
  REQUIRE(m->outcome.steps.size() == 1);
  const cbm::StepRecord& back = m->outcome.steps[0];
  CHECK(back.started == kT);
  REQUIRE(back.messages.size() == 2);
  CHECK(back.messages[1].role == "user");
  CHECK(back.messages[1].content == "u");
  CHECK(back.output == "found");
  CHECK(back.usage.total_tokens == 7);
  // Untraced runs do not pay for them on the wire.
  const std::string untraced = cbm::encode_outcome(1, 1, o, false);
  CHECK(untraced.find("messages") == std::string::npos);
  CHECK(untraced.find("found") == std::string::npos);

  cbm::TaskResult r;
  r.steps = {step};
  const std::string report = cbm::encode_task_result(r);
  CHECK(report.find("messages") == std::string::npos);
  CHECK(report.find("found") == std::string::npos);
  CHECK(report.find("started_at_us") == std::string::npos);
}
