// The run's files: which two paths are one file (same_file), what the path check refuses and how it
// names it, how the journal's lock and end-of-run line behave inside one process.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "journal.hpp"
#include "journal_lock.hpp"
#include "output_file.hpp"
#include "run_files.hpp"
#include "subprocess.hpp"

namespace fs = std::filesystem;
using cbm::test::TempDir;
using cbm::test::write_text;

namespace {

cbm::JournalSettings settings() {
  cbm::JournalSettings s;
  s.chat_model = "glm-4.5-air";
  s.tool_model = "glm-4.5-air";
  s.prompts_digest = "0";
  return s;
}

cbm::TaskResult record(std::uint64_t id) {
  cbm::TaskResult r;
  r.id = id;
  r.round = 1;
  r.topic = "topic " + std::to_string(id);
  r.status = cbm::TaskStatus::succeeded;
  r.attempts = 1;
  return r;
}

// Changes the working directory for one scope.
struct InDir {
  fs::path before = fs::current_path();
  explicit InDir(const fs::path& p) { fs::current_path(p); }
  ~InDir() { fs::current_path(before); }
};

}  // namespace

TEST_CASE("same_file: one file by identity when it exists, by normalised absolute path when it does not", "[run_files]") {
  TempDir dir;
  write_text(dir / "x.json", "{}");
  fs::create_directory(dir / "sub");
  InDir here(dir.path());

  CHECK(cbm::same_file("x.json", dir / "x.json"));
  CHECK(cbm::same_file("sub/../x.json", "x.json"));
  CHECK(cbm::same_file("./x.json", "x.json"));
  CHECK_FALSE(cbm::same_file("x.json", "y.json"));

  fs::create_hard_link(dir / "x.json", dir / "hard.json");
  CHECK(cbm::same_file("hard.json", "x.json"));
  fs::create_symlink(dir / "x.json", dir / "link.json");
  CHECK(cbm::same_file("link.json", "x.json"));

  // Neither exists: the paths decide, `..` through a directory that does not exist included.
  CHECK(cbm::same_file("new.json", dir / "new.json"));
  CHECK(cbm::same_file("nowhere/../new.json", "new.json"));
  CHECK(cbm::same_file("sub/../new.json", "./new.json"));
  CHECK_FALSE(cbm::same_file("sub/new.json", "new.json"));
  CHECK_FALSE(cbm::same_file("", ""));
}

TEST_CASE("the path check names both settings of one file, and the kind of a target that is no regular file", "[run_files]") {
  TempDir dir;
  InDir here(dir.path());
  std::vector<cbm::RunPath> paths = {{"topics_file", "topics.txt", false}, {"output", "r.json", true},
                                     {"journal", "sub/../r.json", true}};
  write_text(dir / "topics.txt", "a\n");
  fs::create_directory(dir / "sub");
  auto problem = cbm::run_paths_problem(paths);
  REQUIRE(problem);
  CHECK(problem->text(true) == "--output 'r.json' and --journal 'sub/../r.json' are the same file: each needs a file of its own");
  CHECK(problem->text(false) ==
        "concurrent_bigmodel::Config: output 'r.json' and journal 'sub/../r.json' are the same file: each needs a "
        "file of its own");

  paths[2].path = "topics.txt";
  REQUIRE(cbm::run_paths_problem(paths));
  CHECK(cbm::run_paths_problem(paths)->text(true).starts_with("--topics-file 'topics.txt' and --journal 'topics.txt'"));

  paths[2].path = "j.jsonl";
  CHECK_FALSE(cbm::run_paths_problem(paths));

  fs::create_directory(dir / "adir");
  paths[2].path = "adir";
  REQUIRE(cbm::run_paths_problem(paths));
  CHECK(cbm::run_paths_problem(paths)->text(true).starts_with("--journal 'adir': not a regular file (a directory)"));

  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  paths[2].path = "fifo";
  CHECK(cbm::run_paths_problem(paths)->text(true).starts_with("--journal 'fifo': not a regular file (a FIFO)"));

  fs::create_symlink("j.jsonl", dir / "link");
  paths[2].path = "link";
  CHECK(cbm::run_paths_problem(paths)->text(true).starts_with("--journal 'link': a symbolic link"));

  // The input is only read: what it is, is the reader's business, not the output check's.
  paths = {{"topics_file", "fifo", false}, {"output", "r.json", true}};
  CHECK_FALSE(cbm::run_paths_problem(paths));
}

TEST_CASE("a file opened for the run is created 0600 whatever the umask, and never through a link", "[run_files]") {
  TempDir dir;
  const mode_t old = ::umask(0);
  {
    cbm::UniqueFd fd = cbm::open_output_file("log_file", dir / "a.log", cbm::OpenAs::append, cbm::kPrivateFileMode);
    struct stat st {};
    REQUIRE(::fstat(fd.get(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
  }
  ::umask(old);
  write_text(dir / "victim", "precious");
  fs::create_symlink(dir / "victim", dir / "link");
  CHECK_THROWS_AS(cbm::open_output_file("journal", dir / "link", cbm::OpenAs::replace, 0600), cbm::PathError);
  CHECK(cbm::test::read_text(dir / "victim") == "precious");
}

TEST_CASE("a file found at a run's path is not written when it is another name of a file, or, for root, another user's",
          "[run_files]") {
  TempDir dir;
  write_text(dir / "victim", "precious");
  fs::create_hard_link(dir / "victim", dir / "run.log");
  CHECK_THROWS_WITH(cbm::open_output_file("log_file", dir / "run.log", cbm::OpenAs::replace, 0600),
                    Catch::Contains("2 hard links"));
  CHECK(cbm::test::read_text(dir / "victim") == "precious");
  if (::geteuid() != 0) return;  // only a run as root refuses other users' files
  write_text(dir / "theirs.jsonl", "theirs");
  REQUIRE(::chown((dir / "theirs.jsonl").c_str(), 65534, 65534) == 0);
  CHECK_THROWS_WITH(cbm::open_output_file("journal", dir / "theirs.jsonl", cbm::OpenAs::replace, 0600),
                    Catch::Contains("belongs to user 65534"));
  CHECK(cbm::test::read_text(dir / "theirs.jsonl") == "theirs");
}

TEST_CASE("a journal's lock refuses a second holder in the same process and names this process's pid", "[run_files]") {
  TempDir dir;
  const fs::path journal = dir / "r.journal.jsonl";
  std::optional<cbm::JournalLock> first(std::in_place, journal);
  try {
    cbm::JournalLock second(journal);
    FAIL("a second lock was granted");
  } catch (const cbm::PathError& e) {
    CHECK_THAT(e.what(), Catch::Contains("pid " + std::to_string(::getpid()) + ", this process"));
  }
  first.reset();
  CHECK_NOTHROW(cbm::JournalLock(journal));
}

TEST_CASE("a journal says whether its run finished, and how many results it holds", "[run_files]") {
  TempDir dir;
  const fs::path path = dir / "r.journal.jsonl";
  CHECK_FALSE(cbm::Journal::inspect(path));
  {
    cbm::Journal j = cbm::Journal::create(path, settings());
    j.append(record(0));
    j.append(record(1));
    j.sync();
  }
  auto found = cbm::Journal::inspect(path);
  REQUIRE(found);
  CHECK(found->journal);
  CHECK_FALSE(found->finished);
  CHECK(found->results == 2);
  {
    std::size_t seen = 0;
    cbm::Journal j = cbm::Journal::open_for_resume(path, settings(), false, [&](const cbm::TaskResult&) { ++seen; });
    CHECK(seen == 2);
    j.append(record(2));
    j.mark_finished(0);
    std::size_t lines = 0;
    j.for_each_record([&](std::string_view) { ++lines; });
    CHECK(lines == 3);  // the end-of-run line is no record
  }
  found = cbm::Journal::inspect(path);
  REQUIRE(found);
  CHECK(found->finished);
  CHECK(found->results == 3);
  // Resuming a finished run drops its end line: the run goes on, unfinished until it ends.
  {
    std::size_t seen = 0;
    cbm::Journal j = cbm::Journal::open_for_resume(path, settings(), false, [&](const cbm::TaskResult&) { ++seen; });
    CHECK(seen == 3);
  }
  CHECK_FALSE(cbm::Journal::inspect(path)->finished);

  write_text(dir / "other.jsonl", "{\"not\": \"a journal\"}\n");
  found = cbm::Journal::inspect(dir / "other.jsonl");
  REQUIRE(found);
  CHECK_FALSE(found->journal);
}
