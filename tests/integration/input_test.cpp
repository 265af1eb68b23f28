// Topics inputs that are not well-behaved regular files: a pipe (bash's <(...)), a FIFO, /dev/zero, a
// 50 MB line, millions of invalid lines, an empty file, a directory. Real supervisor processes against
// the simulator. How an input is read does not depend on the mode, so these run in one (threading:
// the supervisor's own footprint, without the workers' rings).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;
namespace fs = std::filesystem;

namespace {

struct InputRun {
  TempDir dir;
  std::unique_ptr<Subprocess> process;

  fs::path report() const { return dir / "report.json"; }
  fs::path log() const { return dir / "run.log"; }

  std::vector<std::string> argv(const Simulator& sim, const std::string& topics_file,
                                const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> a = {supervisor_path(), "--base-url", sim.base_url(), "--output",  report().string(),
                                  "--log-file",      log().string(), "--delay",   "0",       "--no-search",
                                  "--mode",          "threading",    "--topics-file", topics_file};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  void start(const Simulator& sim, const std::string& topics_file, const std::vector<std::string>& extra = {}) {
    process = std::make_unique<Subprocess>(argv(sim, topics_file, extra), supervisor_spawn_options(dir.path()));
  }
  // Through bash, so the topics file can be a process substitution (exec: the pid is the supervisor's).
  void start_in_bash(const Simulator& sim, const std::string& topics_file_expression) {
    std::string command = "exec";
    for (const auto& arg : argv(sim, "")) {
      if (arg.empty()) continue;  // the topics file comes last, unquoted
      command += " '" + arg + "'";
    }
    command += " " + topics_file_expression;
    process = std::make_unique<Subprocess>(std::vector<std::string>{"/bin/bash", "-c", command},
                                           supervisor_spawn_options(dir.path()));
  }
  std::string log_text() const { return fs::exists(log()) ? read_text(log()) : std::string(); }
  std::string diagnostics() const { return "stderr:\n" + process->err() + "\nlog:\n" + log_text().substr(0, 20000); }
};

rapidjson::Document parse_report(const fs::path& p) {
  rapidjson::Document d;
  d.Parse(read_text(p).c_str());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

std::map<std::string, std::string> status_by_topic(const rapidjson::Document& report) {
  std::map<std::string, std::string> out;
  for (const auto& r : report["results"].GetArray()) out[r["topic"].GetString()] = r["status"].GetString();
  return out;
}

// The supervisor's peak resident memory, from the log's last own_usage line (run_driver.cpp).
long peak_rss_kib(const std::string& log) {
  const auto at = log.rfind("peak_rss_kib=");
  REQUIRE(at != std::string::npos);
  return std::stol(log.substr(at + std::string_view("peak_rss_kib=").size()));
}

// A field of /proc/<pid>/status or /proc/<pid>/io ("VmHWM:", "rchar:"), in its own unit; -1 if gone.
long proc_value(pid_t pid, const std::string& file, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  }
  return -1;
}

// The baseline a run's peak RSS is held to: far below the inputs these tests feed it (50 MB and more),
// and above what the supervisor needs for itself in threading mode.
constexpr long kRssBoundKib = 40 * 1024;
// Under a sanitizer a process's resident memory is mostly the sanitizer's (shadow memory, freed blocks
// held in quarantine): the bounds below are the product's, checked in the normal builds.
#ifdef CBM_TEST_SANITIZED
constexpr bool kMemoryIsMeasurable = false;
#else
constexpr bool kMemoryIsMeasurable = true;
#endif

}  // namespace

TEST_CASE("a pipe given as the topics file (<(...)) is read once and every topic analysed, duplicates copied",
          "[input]") {
  Simulator sim;
  InputRun run;
  run.start_in_bash(sim, "<(printf 'pipe one\\npipe two\\npipe one\\npipe three\\n')");
  REQUIRE(run.process->exit_code(60s) == 0);
  INFO(run.diagnostics());
  const auto report = parse_report(run.report());
  CHECK(report["summary"]["total_tasks"].GetInt() == 4);
  CHECK(report["summary"]["successful_tasks"].GetInt() == 4);
  int copies = 0;
  for (const auto& r : report["results"].GetArray()) copies += r.HasMember("duplicate_of") && !r["duplicate_of"].IsNull();
  CHECK(copies == 1);
  CHECK(sim.requests_total() == 3);  // the repeated topic was sent once
}

TEST_CASE("a FIFO is opened once and read from its writer", "[input]") {
  Simulator sim;
  InputRun run;
  const fs::path fifo = run.dir / "topics.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  run.start(sim, fifo.string());
  // The writer comes after the reader started (its open blocks until the supervisor's).
  SpawnOptions writer_options;
  writer_options.output_dir = run.dir / "writer";
  fs::create_directories(writer_options.output_dir);
  Subprocess writer({"/bin/sh", "-c", "printf 'fifo alpha\\nfifo beta\\n' > '" + fifo.string() + "'"},
                    writer_options);
  REQUIRE(writer.exit_code(30s) == 0);
  const auto raw = run.process->wait_for(60s);  // a hang guard
  INFO(run.diagnostics());
  REQUIRE(raw.has_value());
  REQUIRE(run.process->exit_code() == 0);
  const auto by_topic = status_by_topic(parse_report(run.report()));
  CHECK(by_topic == std::map<std::string, std::string>{{"fifo alpha", "succeeded"}, {"fifo beta", "succeeded"}});
}

TEST_CASE("/dev/zero as the topics file: memory stays flat and SIGTERM ends the read", "[input][signals]") {
  Simulator sim;
  InputRun run;
  run.start(sim, "/dev/zero");
  const pid_t pid = run.process->pid();
  // 256 MiB read: the old reader held all of it by now.
  REQUIRE(eventually([&] { return proc_value(pid, "io", "rchar:") > 256L * 1024 * 1024; }, 60s));
  const long hwm = proc_value(pid, "status", "VmHWM:");
  CHECK(hwm > 0);
  if (kMemoryIsMeasurable) CHECK(hwm < kRssBoundKib);
  const auto signalled = std::chrono::steady_clock::now();
  run.process->signal(SIGTERM);
  const auto raw = run.process->wait_for(20s);  // a hang guard, not a bound on the latency
  const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - signalled);
  INFO(run.diagnostics());
  REQUIRE(raw.has_value());
  WARN("SIGTERM during the /dev/zero read: exited after " << latency.count() << " ms");
  CHECK(run.process->exit_code() == 143);
  const auto report = parse_report(run.report());
  CHECK(report["summary"]["total_tasks"].GetInt() == 0);
  CHECK(report["summary"]["interrupted"].GetBool());
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a 50 MB line is skipped with its line number without being held, and the other topics run", "[input]") {
  Simulator sim;
  InputRun run;
  const fs::path file = run.dir / "topics.txt";
  {
    std::ofstream out(file, std::ios::binary);
    out << "before the long line\n";
    const std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 50; ++i) out << chunk;
    out << "\nafter the long line\n";
  }
  run.start(sim, file.string());
  REQUIRE(run.process->exit_code(60s) == 0);
  INFO(run.diagnostics());
  const std::string log = run.log_text();
  CHECK_THAT(log, Catch::Contains("topics line 2 skipped: longer than 4096 bytes (52428800)"));
  if (kMemoryIsMeasurable) CHECK(peak_rss_kib(log) < kRssBoundKib);
  const auto by_topic = status_by_topic(parse_report(run.report()));
  CHECK(by_topic == std::map<std::string, std::string>{{"before the long line", "succeeded"},
                                                        {"after the long line", "succeeded"}});
}

TEST_CASE("2,000,000 invalid lines: the first 100 are logged, then one summary, and memory and log stay small",
          "[input]") {
  Simulator sim;
  InputRun run;
  const fs::path file = run.dir / "topics.txt";
  constexpr long kInvalid = 2'000'000;
  {
    std::string text = "the one valid topic\n";
    text.reserve(text.size() + 2 * kInvalid);
    for (long i = 0; i < kInvalid; ++i) text += "\xff\n";  // not UTF-8
    write_text(file, text);
  }
  run.start(sim, file.string());
  REQUIRE(run.process->exit_code(120s) == 0);
  INFO(run.diagnostics().substr(0, 4000));
  const std::string log = run.log_text();
  CHECK_THAT(log, Catch::Contains("topics line 2 skipped: not valid UTF-8"));
  CHECK_THAT(log, Catch::Contains("topics line 101 skipped: not valid UTF-8"));
  CHECK_THAT(log, !Catch::Contains("topics line 102 skipped"));
  CHECK_THAT(log, Catch::Contains("1999900 more invalid topics lines skipped (2000000 in all"));
  CHECK(log.size() < 64 * 1024);
  if (kMemoryIsMeasurable) CHECK(peak_rss_kib(log) < kRssBoundKib);
  const auto report = parse_report(run.report());
  CHECK(report["summary"]["invalid_input_lines"].GetInt64() == kInvalid);
  CHECK(status_by_topic(report) == std::map<std::string, std::string>{{"the one valid topic", "succeeded"}});
}

TEST_CASE("an input without a valid topic exits 2 and says how many lines it read", "[input]") {
  Simulator sim;
  InputRun run;
  const fs::path empty = run.dir / "empty.txt";
  write_text(empty, "");
  const fs::path invalid = run.dir / "invalid.txt";
  write_text(invalid, "# a comment\n\n\xff\n\t\xfe \n");
  for (const auto& [file, message] :
       {std::pair{empty, "no topics in " + empty.string() + ": 0 lines, 0 invalid"},
        std::pair{invalid, "no topics in " + invalid.string() + ": 4 lines, 2 invalid"}}) {
    run.start(sim, file.string());
    CHECK(run.process->exit_code(30s) == 2);
    CHECK_THAT(run.process->err(), Catch::Contains(message));
  }
  CHECK_FALSE(fs::exists(run.report()));
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a directory as the topics file is a usage error naming it", "[input]") {
  Simulator sim;
  InputRun run;
  const fs::path dir = run.dir / "topics.d";
  fs::create_directory(dir);
  run.start(sim, dir.string());
  CHECK(run.process->exit_code(30s) == 2);
  CHECK_THAT(run.process->err(), Catch::Contains("--topics-file: '" + dir.string() + "' is a directory"));
  CHECK_FALSE(fs::exists(run.report()));
}

TEST_CASE("a topic of exactly 4096 bytes with whitespace around it is run, trimmed", "[input]") {
  Simulator sim;
  InputRun run;
  const std::string topic(4096, 't');
  const fs::path file = run.dir / "topics.txt";
  write_text(file, std::string(3000, ' ') + topic + " \t \r\n" + "short one\n");
  run.start(sim, file.string());
  REQUIRE(run.process->exit_code(60s) == 0);
  INFO(run.diagnostics());
  const auto by_topic = status_by_topic(parse_report(run.report()));
  CHECK(by_topic == std::map<std::string, std::string>{{topic, "succeeded"}, {"short one", "succeeded"}});
}
