// The run's files, attacked as on a shared machine: device nodes and links where the report, journal
// and log go, two flags naming one file, two runs on one journal, a rerun over an interrupted run's
// journal, umasks that would widen the files, and a report that cannot be written. Real supervisor
// processes against the simulator. File handling is the same in every mode (RunParts opens the files
// before the transport runs anything), so one mode is enough but where noted.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>

#include "simulator.hpp"

using namespace std::chrono_literals;
using namespace cbm::test;
namespace fs = std::filesystem;

namespace {

struct Run {
  TempDir dir;
  Simulator& sim;
  std::string mode = "threading";
  bool quiet = true;  // no progress or summary on stderr

  explicit Run(Simulator& s) : sim(s) {}

  fs::path report() const { return dir / "report.json"; }
  fs::path journal() const { return dir / "report.journal.jsonl"; }
  fs::path log() const { return dir / "run.log"; }

  std::vector<std::string> argv(const std::vector<std::string>& extra) const {
    std::vector<std::string> a = {supervisor_path(), "--base-url", sim.base_url(), "--no-search", "--delay", "0",
                                  "--mode", mode};
    if (quiet) a.push_back("--quiet");
    const auto has = [&](const std::string& flag) { return std::find(extra.begin(), extra.end(), flag) != extra.end(); };
    if (!has("--output")) a.insert(a.end(), {"--output", report().string()});
    if (!has("--log-file")) a.insert(a.end(), {"--log-file", log().string()});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  std::unique_ptr<Subprocess> start(const std::vector<std::string>& extra) const {
    return std::make_unique<Subprocess>(argv(extra), supervisor_spawn_options(dir.path()));
  }

  // Runs to the end; the exit status.
  int run(const std::vector<std::string>& extra, std::string* err = nullptr) const {
    auto p = start(extra);
    const int status = p->exit_code();
    if (err != nullptr) *err = p->err();
    return status;
  }
};

std::string numbered_topics(std::size_t n, const std::string& prefix) {
  std::string text;
  for (std::size_t i = 0; i < n; ++i) text += prefix + std::to_string(i) + "\n";
  return text;
}

std::size_t line_count(const fs::path& p) {
  std::ifstream in(p);
  return static_cast<std::size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// The last line of a text file.
std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') + 1);
}

// Sets the umask for one scope: a child started meanwhile inherits it.
struct Umask {
  mode_t before;
  explicit Umask(mode_t m) : before(::umask(m)) {}
  ~Umask() { ::umask(before); }
};

}  // namespace

TEST_CASE("a device node named as the report is refused before anything is sent, and stays a device", "[files]") {
  if (::geteuid() != 0) {
    WARN("needs root to create a device node: not run");
    return;
  }
  Simulator sim;
  Run run(sim);
  const fs::path dev = run.dir / "disk";
  REQUIRE(::mknod(dev.c_str(), S_IFCHR | 0600, ::makedev(1, 3)) == 0);  // /dev/null's numbers
  std::string err;
  CHECK(run.run({"--output", dev.string(), "--topics", "a"}, &err) == 2);
  CHECK_THAT(err, Catch::Contains("--output '" + dev.string() + "': not a regular file (a character device)"));
  struct stat st {};
  REQUIRE(::lstat(dev.c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK(st.st_rdev == ::makedev(1, 3));
  CHECK(sim.requests_total() == 0);

  // The log and the results file the same way; a FIFO and a directory too.
  CHECK(run.run({"--log-file", dev.string(), "--topics", "a"}, &err) == 2);
  CHECK_THAT(err, Catch::Contains("--log-file '" + dev.string() + "': not a regular file (a character device)"));
  REQUIRE(::mkfifo((run.dir / "fifo").c_str(), 0600) == 0);
  CHECK(run.run({"--results-jsonl", (run.dir / "fifo").string(), "--topics", "a"}, &err) == 2);
  CHECK_THAT(err, Catch::Contains("not a regular file (a FIFO)"));
  CHECK_THAT(err, Catch::Contains("--results-jsonl -"));
  fs::create_directory(run.dir / "adir");
  CHECK(run.run({"--journal", (run.dir / "adir").string(), "--topics", "a"}, &err) == 2);
  CHECK_THAT(err, Catch::Contains("not a regular file (a directory)"));
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a symbolic link planted as the journal or the log is refused and its target left untouched", "[files]") {
  Simulator sim;
  Run run(sim);
  const fs::path victim = run.dir / "victim.txt";
  write_text(victim, "precious\n");
  fs::create_symlink(victim, run.journal());
  std::string err;
  CHECK(run.run({"--topics", "a"}, &err) == 2);
  CHECK_THAT(err, Catch::Contains("--journal '" + run.journal().string() + "': a symbolic link"));
  CHECK(read_text(victim) == "precious\n");

  fs::remove(run.journal());
  fs::create_symlink(victim, run.log());
  CHECK(run.run({"--topics", "a"}, &err) == 2);
  CHECK_THAT(err, Catch::Contains("--log-file '" + run.log().string() + "': a symbolic link"));
  CHECK(read_text(victim) == "precious\n");
  CHECK(sim.requests_total() == 0);
  CHECK_FALSE(fs::exists(run.report()));
}

TEST_CASE("two flags naming one file are refused, naming both", "[files]") {
  Simulator sim;
  Run run(sim);
  write_text(run.dir / "topics.txt", "a\nb\n");
  fs::create_directory(run.dir / "sub");
  const std::string report = run.report().string();
  const std::string topics = (run.dir / "topics.txt").string();
  struct Case {
    std::vector<std::string> flags;
    std::string first;
    std::string second;
  };
  fs::create_hard_link(run.dir / "topics.txt", run.dir / "hard.log");
  const std::vector<Case> cases = {
      {{"--journal", report, "--topics", "a"}, "--output", "--journal"},
      {{"--journal", run.log().string(), "--topics", "a"}, "--journal", "--log-file"},
      {{"--output", topics, "--topics-file", topics}, "--topics-file", "--output"},
      {{"--log-file", (run.dir / "sub" / ".." / "report.json").string(), "--topics", "a"}, "--output", "--log-file"},
      {{"--log-file", (run.dir / "hard.log").string(), "--topics-file", topics}, "--topics-file", "--log-file"},
      {{"--results-jsonl", (run.dir / "sub/../run.log").string(), "--topics", "a"}, "--log-file", "--results-jsonl"},
  };
  for (const auto& c : cases) {
    INFO(c.first << " = " << c.second);
    std::string err;
    CHECK(run.run(c.flags, &err) == 2);
    CHECK_THAT(err, Catch::Contains(c.first + " '") && Catch::Contains(" and " + c.second + " '") &&
                        Catch::Contains("are the same file"));
  }
  CHECK(read_text(run.dir / "topics.txt") == "a\nb\n");
  CHECK(sim.requests_total() == 0);
}

TEST_CASE("a second run on a journal in use exits 2 naming the first run's pid", "[files][modes]") {
  const std::string mode = GENERATE(from_range(all_modes()));
  INFO("--mode " << mode);
  Simulator sim;
  Run run(sim);
  run.mode = mode;
  auto first = run.start({"--topics", "[[fault:hang]] held", "--timeout", "60"});
  // The first run holds the lock once its request reaches the server (the lock comes before anything is sent).
  REQUIRE(eventually([&] { return sim.requests_total() >= 1; }, 30s));
  const std::string before = read_text(run.journal());
  std::string err;
  CHECK(run.run({"--topics", "b"}, &err) == 2);
  CHECK_THAT(err, Catch::Contains("--journal '" + run.journal().string() + "': in use by another run (pid " +
                                  std::to_string(first->pid()) + ";"));
  CHECK(read_text(run.journal()) == before);
  CHECK(sim.requests_total() == 1);
  first->signal(SIGKILL);
  first->exit_code();
}

TEST_CASE("an interrupted run's journal is not replaced without --resume or --fresh", "[files]") {
  Simulator sim({"--latency-ms", "20"});
  Run run(sim);
  const std::size_t n = 400;
  write_text(run.dir / "topics.txt", numbered_topics(n, "topic "));
  const std::vector<std::string> flags = {"--topics-file", (run.dir / "topics.txt").string(), "--concurrency", "4"};

  auto first = run.start(flags);
  REQUIRE(eventually([&] { return fs::exists(run.journal()) && line_count(run.journal()) >= 20; }, 30s));
  first->signal(SIGKILL);
  REQUIRE(first->exit_code() == 128 + SIGKILL);
  const std::size_t held = line_count(run.journal()) - 1;  // the header
  REQUIRE(held < n);
  const std::string journal = read_text(run.journal());

  std::string err;
  CHECK(run.run(flags, &err) == 2);
  CHECK_THAT(err, Catch::Contains("--journal '" + run.journal().string() + "': holds " + std::to_string(held) +
                                  " results of a run that did not finish"));
  CHECK_THAT(err, Catch::Contains("pass --resume to continue it, or --fresh to discard"));
  CHECK(read_text(run.journal()) == journal);

  // --resume continues it: the run ends, and the journal says so, so a plain rerun may replace it.
  auto with = [&](std::string flag) {
    auto f = flags;
    f.push_back(std::move(flag));
    return f;
  };
  CHECK(run.run(with("--resume")) == 0);
  CHECK_THAT(last_line(read_text(run.journal())), Catch::Contains("\"journal_end\""));

  // Stopped by a signal, a run is unfinished too; --fresh starts over.
  const std::int64_t sent = sim.requests_total();
  auto stopped = run.start(flags);
  REQUIRE(eventually([&] { return sim.requests_total() >= sent + 20; }, 30s));
  stopped->signal(SIGTERM);
  CHECK(stopped->exit_code() == 128 + SIGTERM);
  CHECK(run.run(flags, &err) == 2);
  CHECK_THAT(err, Catch::Contains("results of a run that did not finish"));
  CHECK(run.run(with("--fresh")) == 0);
  CHECK(line_count(run.journal()) == n + 2);  // header, n results, end line
  CHECK(run.run(flags) == 0);                 // finished: replaced as before
}

TEST_CASE("the run's files are 0600 whatever the umask, and --output-mode widens the report and the results file", "[files]") {
  Simulator sim;
  for (const mode_t umask : {mode_t{0}, mode_t{077}}) {
    INFO("umask " << umask);
    Run run(sim);
    const fs::path results = run.dir / "results.jsonl";
    {
      Umask u(umask);
      REQUIRE(run.run({"--topics", "a", "b", "--results-jsonl", results.string()}) == 0);
    }
    CHECK(mode_of(run.report()) == 0600);
    CHECK(mode_of(run.journal()) == 0600);
    CHECK(mode_of(run.log()) == 0600);
    CHECK(mode_of(results) == 0600);
    CHECK(mode_of(run.dir / "report.journal.jsonl.lock") == 0600);

    fs::remove(run.log());
    {
      Umask u(umask);
      REQUIRE(run.run({"--topics", "a", "--results-jsonl", results.string(), "--output-mode", "0644"}) == 0);
    }
    CHECK(mode_of(run.report()) == 0644);
    CHECK(mode_of(results) == 0644);
    CHECK(mode_of(run.journal()) == 0600);
    CHECK(mode_of(run.log()) == 0600);
  }
  Run run(sim);
  for (const std::string bad : {"0999", "644x", "0400", "01777"}) {
    std::string err;
    CHECK(run.run({"--topics", "a", "--output-mode", bad}, &err) == 2);
    CHECK_THAT(err, Catch::Contains("--output-mode: '" + bad + "' is not an octal mode"));
  }
}

TEST_CASE("a report that cannot be written is said so on the last line, not named as written", "[files]") {
  if (::geteuid() != 0) {
    WARN("needs root to mount a small tmpfs: not run");
    return;
  }
  Simulator sim;
  Run run(sim);
  const fs::path full = run.dir / "full";
  fs::create_directory(full);
  if (::mount("tmpfs", full.c_str(), "tmpfs", 0, "size=4k") != 0) {
    WARN("cannot mount a tmpfs here: not run");
    return;
  }
  struct Unmount {
    fs::path at;
    ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
  } unmount{full};
  const fs::path report = full / "report.json";
  std::vector<std::string> flags = {"--output", report.string(), "--journal", run.journal().string(),
                                    "--topics-file", (run.dir / "topics.txt").string()};
  write_text(run.dir / "topics.txt", numbered_topics(40, "a topic long enough to fill a small disk "));
  run.quiet = false;  // the console's summary line is under test too
  auto p = run.start(flags);
  CHECK(p->exit_code() == 1);  // every task succeeded, but the report was asked for and not written
  const std::string said = "report: NOT written to " + report.string() + ": ";
  CHECK_THAT(last_line(p->err()), Catch::Contains(said));
  CHECK_THAT(last_line(read_text(run.log())), Catch::Contains(said));
  CHECK_FALSE(fs::exists(report));
  // Unfinished: its results are nowhere else.
  CHECK_THAT(last_line(read_text(run.journal())), !Catch::Contains("journal_end"));
}
