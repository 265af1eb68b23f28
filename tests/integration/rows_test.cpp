// Row inputs (JSONL and CSV rows whose fields fill the prompts) and the streamed results
// (--results-jsonl), in every mode. Real supervisor processes against the simulator, which echoes the
// analysis step's user message into the analysis ("Analysis of <message>: ..."): what a test finds
// there reached the wire.
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;

namespace {

constexpr const char* kRowPrompt = "[analysis.user]\nAnalyse {topic} for {region} in {year}\n";

struct RowRun {
  TempDir dir;
  std::unique_ptr<Subprocess> process;

  std::filesystem::path report() const { return dir / "report.json"; }
  std::filesystem::path results() const { return dir / "results.jsonl"; }
  std::filesystem::path log() const { return dir / "run.log"; }

  // Starts the supervisor with `input` as the topics file `name` and `prompts` as the prompt file.
  void start(const Simulator& sim, const std::string& name, const std::string& input,
             const std::string& prompts, std::vector<std::string> extra) {
    write_text(dir / name, input);
    write_text(dir / "prompts.txt", prompts);
    std::vector<std::string> argv = {supervisor_path(),
                                     "--base-url",
                                     sim.base_url(),
                                     "--output",
                                     report().string(),
                                     "--log-file",
                                     log().string(),
                                     "--delay",
                                     "0",
                                     "--no-search",
                                     "--topics-file",
                                     (dir / name).string(),
                                     "--prompt-file",
                                     (dir / "prompts.txt").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process = std::make_unique<Subprocess>(argv, supervisor_spawn_options(dir.path()));
  }
  std::string diagnostics() const {
    return "stderr:\n" + process->err() + "\nlog:\n" +
           (std::filesystem::exists(log()) ? read_text(log()) : "");
  }
};

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  INFO(text);
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

// Each whole line of a JSONL text, parsed (a last line without its '\n' is still being written).
std::vector<rapidjson::Document> whole_lines(const std::string& text) {
  std::vector<rapidjson::Document> out;
  std::size_t start = 0;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    out.push_back(parse(text.substr(start, nl - start)));
    start = nl + 1;
  }
  REQUIRE(start == text.size());  // whole lines only: never a partial one
  return out;
}

std::string fields_of(const rapidjson::Value& record) {
  if (!record.HasMember("fields")) return "none";
  std::string out;
  for (const auto& m : record["fields"].GetObject()) {
    out += m.name.GetString();
    out += '=';
    out += m.value.GetString();
    out += ';';
  }
  return out;
}

std::string analysis_of(const rapidjson::Value& record) {
  return record["analysis"].GetString();
}

}  // namespace

TEST_CASE("JSONL rows: each field fills its placeholder on the wire and is kept in the record", "[rows]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  CAPTURE(mode);
  Simulator sim;
  RowRun run;
  // One topic with two regions: two tasks, not a duplicate. A row without a field the prompt uses is
  // skipped with its line number.
  run.start(sim, "rows.jsonl",
            "{\"topic\": \"Tariffs\", \"region\": \"EU\", \"year\": 2024}\n"
            "{\"topic\": \"Tariffs\", \"region\": \"US\", \"year\": 2025}\n"
            "{\"topic\": \"No region\", \"year\": 2025}\n",
            kRowPrompt, {"--mode", mode, "--concurrency", "2"});
  REQUIRE(run.process->exit_code() == 0);
  INFO(run.diagnostics());
  const auto report = parse(read_text(run.report()));
  CHECK(report["summary"]["total_tasks"].GetInt() == 2);
  std::map<std::string, std::string> analysis_by_fields;
  for (const auto& r : report["results"].GetArray()) analysis_by_fields[fields_of(r)] = analysis_of(r);
  REQUIRE(analysis_by_fields.size() == 2);
  CHECK_THAT(analysis_by_fields["region=EU;year=2024;"],
             Catch::StartsWith("Analysis of Analyse Tariffs for EU in 2024"));
  CHECK_THAT(analysis_by_fields["region=US;year=2025;"],
             Catch::StartsWith("Analysis of Analyse Tariffs for US in 2025"));
  CHECK_THAT(read_text(run.log()),
             Catch::Contains("topics line 3 skipped: has no field 'region' (the prompts use {region})"));
}

TEST_CASE("CSV rows: quoted fields fill their placeholders and are kept in the record", "[rows]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  CAPTURE(mode);
  Simulator sim;
  RowRun run;
  run.start(sim, "rows.csv",
            "topic,region,year\r\n"
            "\"Chips, memory\",\"East \"\"Asia\"\"\",2024\r\n"
            "Grids,EU\r\n"
            "Grids,EU,2025\r\n",
            kRowPrompt, {"--mode", mode, "--results-jsonl", "results.jsonl"});
  REQUIRE(run.process->exit_code() == 0);
  INFO(run.diagnostics());
  const auto report = parse(read_text(run.report()));
  REQUIRE(report["summary"]["total_tasks"].GetInt() == 2);
  std::map<std::string, std::string> analysis_by_topic;
  for (const auto& r : report["results"].GetArray()) {
    analysis_by_topic[r["topic"].GetString()] = analysis_of(r);
    if (std::string(r["topic"].GetString()) == "Grids") CHECK(fields_of(r) == "region=EU;year=2025;");
  }
  CHECK_THAT(analysis_by_topic["Chips, memory"],
             Catch::StartsWith("Analysis of Analyse Chips, memory for East \"Asia\" in 2024"));
  CHECK_THAT(analysis_by_topic["Grids"], Catch::StartsWith("Analysis of Analyse Grids for EU in 2025"));
  CHECK_THAT(read_text(run.log()), Catch::Contains("topics line 3 skipped: has 2 fields, the header 3"));
  // The stream has the report's records, one a line.
  const auto lines = whole_lines(read_text(run.results()));
  REQUIRE(lines.size() == 2);
  std::set<std::string> streamed;
  for (const auto& l : lines) streamed.insert(fields_of(l) + analysis_of(l));
  std::set<std::string> reported;
  for (const auto& r : report["results"].GetArray()) reported.insert(fields_of(r) + analysis_of(r));
  CHECK(streamed == reported);
}

TEST_CASE(
    "a placeholder the input has no field for, or a CSV without a topic column, exits 2 sending nothing",
    "[rows]") {
  Simulator sim;
  {
    RowRun run;
    run.start(sim, "rows.csv", "topic,region,year\nGrids,EU,2025\n", "[search.user]\n{topic} in {regoin}\n",
              {"--results-jsonl", "results.jsonl"});
    CHECK(run.process->exit_code() == 2);
    CHECK_THAT(
        run.process->err(),
        Catch::Contains("[search.user]: unknown placeholder {regoin}: the known ones are {topic}, {sources}, "
                        "{region}, {year}"));
    CHECK_FALSE(std::filesystem::exists(run.report()));
    CHECK_FALSE(std::filesystem::exists(run.results()));
    CHECK_FALSE(std::filesystem::exists(run.dir / "report.journal.jsonl"));
  }
  {
    RowRun run;  // text input has no fields at all
    run.start(sim, "topics.txt", "Grids\n", kRowPrompt, {});
    CHECK(run.process->exit_code() == 2);
    CHECK_THAT(run.process->err(), Catch::Contains("unknown placeholder {region}"));
  }
  {
    RowRun run;
    run.start(sim, "rows.csv", "subject,region\nGrids,EU\n", "[analysis.user]\n{topic}\n", {});
    CHECK(run.process->exit_code() == 2);
    CHECK_THAT(run.process->err(),
               Catch::Contains("the CSV header has no 'topic' column (columns: subject, region)"));
  }
  {
    RowRun run;  // --input-format overrides the extension
    run.start(sim, "rows.txt", "{\"topic\": \"Grids\", \"region\": \"EU\", \"year\": 1}\n", kRowPrompt,
              {"--input-format", "jsonl"});
    CHECK(run.process->exit_code() == 0);
  }
  CHECK(sim.requests_total() == 1);  // the last run's only
}

TEST_CASE("the results stream (--results-jsonl) must not be another file of the run", "[rows][results]") {
  Simulator sim;
  for (const std::string other : {"report.json", "run.log", "rows.jsonl", "report.journal.jsonl"}) {
    RowRun run;
    run.start(sim, "rows.jsonl", "{\"topic\": \"a\", \"region\": \"EU\", \"year\": 1}\n", kRowPrompt,
              {"--results-jsonl", (run.dir / other).string()});
    CHECK(run.process->exit_code() == 2);
    CHECK_THAT(run.process->err(), Catch::Contains(" and --results-jsonl '") && Catch::Contains("are the same file"));
  }
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("the results stream (--results-jsonl) has a whole line per finished task while the run still goes",
          "[rows][results]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  CAPTURE(mode);
  Simulator sim;
  RowRun run;
  run.start(sim, "topics.txt", "quick\nheld [[fault:hang]]\n", "[analysis.user]\n{topic}\n",
            {"--mode", mode, "--concurrency", "2", "--timeout", "120", "--drain-grace", "0",
             "--results-jsonl", "results.jsonl"});
  // The held topic keeps the run going; the quick one's record must be readable meanwhile.
  REQUIRE(eventually(
      [&] {
        return std::filesystem::exists(run.results()) &&
               read_text(run.results()).find('\n') != std::string::npos;
      },
      30s));
  const auto during = whole_lines(read_text(run.results()));
  REQUIRE(during.size() == 1);
  CHECK(std::string(during[0]["topic"].GetString()) == "quick");
  CHECK(during[0]["success"].GetBool());
  CHECK_FALSE(run.process->wait_for(0ms).has_value());  // still running

  run.process->signal(SIGTERM);
  CHECK(run.process->exit_code() == 143);
  INFO(run.diagnostics());
  const auto after = whole_lines(read_text(run.results()));
  REQUIRE(after.size() == 2);
  CHECK(std::string(after[1]["status"].GetString()) == "cancelled");
  // The same records as the report's, in the report's shape.
  const auto report = parse(read_text(run.report()));
  REQUIRE(report["results"].Size() == 2);
  for (const auto& line : after) {
    bool found = false;
    for (const auto& r : report["results"].GetArray()) found = found || r == line;
    CHECK(found);
  }
}

TEST_CASE(
    "the results stream to stdout (--results-jsonl -) makes it pure JSONL, every round of a monitor appended",
    "[rows][results]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  CAPTURE(mode);
  Simulator sim;
  RowRun run;
  run.start(sim, "rows.jsonl",
            "{\"topic\": \"Tariffs\", \"region\": \"EU\", \"year\": 2024}\n"
            "{\"topic\": \"Grids\", \"region\": \"US\", \"year\": 2025}\n",
            kRowPrompt, {"--mode", mode, "--iterations", "2", "--results-jsonl", "-"});
  REQUIRE(run.process->exit_code() == 0);
  INFO(run.diagnostics());
  const auto lines = whole_lines(run.process->out());
  REQUIRE(lines.size() == 4);
  std::multiset<std::uint32_t> rounds;
  for (const auto& l : lines) {
    rounds.insert(l["round"].GetUint());
    CHECK(fields_of(l) != "none");
  }
  CHECK(rounds == std::multiset<std::uint32_t>{1, 1, 2, 2});
  CHECK_THAT(run.process->err(), Catch::Contains("4 tasks: 4 succeeded"));
}
