// The run's files as a program embedding the library meets them: the same rules as the CLI's, named by
// their Config fields, and one run per journal across two Executors of one process.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "concurrent_bigmodel/executor.hpp"
#include "simulator.hpp"

namespace lib = concurrent_bigmodel;
using namespace std::chrono_literals;
using cbm::test::Simulator;
using cbm::test::TempDir;

namespace {

lib::Config config_for(const Simulator& sim, const TempDir& dir) {
  lib::Config c;
  c.api_key = "sk-test-library";
  c.base_url = sim.base_url();
  c.mode = lib::Mode::threading;
  c.concurrency = 1;
  c.delay = 0ms;
  c.timeout = 60s;
  c.search = false;
  c.output = dir / "report.json";
  c.worker_executable = CBM_WORKER_PATH;
  return c;
}

}  // namespace

TEST_CASE("a second Executor of the same process on a journal in use is refused, naming this process", "[library][files]") {
  Simulator sim;
  TempDir dir;
  lib::Executor first(config_for(sim, dir));
  std::thread running([&] { first.run({"[[fault:hang]] held"}); });
  REQUIRE(cbm::test::eventually([&] { return sim.requests_total() >= 1; }, 30s));
  try {
    lib::Executor second(config_for(sim, dir));
    second.run({"another"});
    FAIL("the second run started");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(), Catch::Contains("concurrent_bigmodel::Config: journal '") &&
                             Catch::Contains("in use by another run (pid " + std::to_string(::getpid()) +
                                             ", this process"));
  }
  CHECK(sim.requests_total() == 1);
  first.stop_now();
  running.join();
  // The lock went with the first run: the next one may run (with fresh: the first was stopped).
  lib::Config again = config_for(sim, dir);
  again.fresh = true;
  CHECK(lib::Executor(again).run({"another"}).exit_status == 0);
}

TEST_CASE("the library refuses a bad output_mode and two fields naming one file, naming the fields", "[library][files]") {
  Simulator sim;
  TempDir dir;
  lib::Config c = config_for(sim, dir);
  c.output_mode = 0400;
  CHECK_THROWS_WITH(lib::Executor(c), Catch::Contains("output_mode: '0400' is not an octal mode"));
  c.output_mode = 0640;
  c.log_file = dir / "sub" / ".." / "report.json";
  CHECK_THROWS_WITH(lib::Executor(c), Catch::Contains("output '") && Catch::Contains("and log_file '") &&
                                          Catch::Contains("are the same file"));
  c.log_file.clear();
  c.resume = true;
  c.fresh = true;
  CHECK_THROWS_WITH(lib::Executor(c), Catch::Contains("fresh: not with resume"));
}
