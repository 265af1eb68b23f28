// The command line: the Python tool's flags with its defaults, then ours (`--help` groups them). It
// maps onto the library's Config; the topics and the number of rounds are the run's arguments.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "concurrent_bigmodel/executor.hpp"
#include "serve.hpp"

namespace cbm {

// A run the command line asks for.
struct Invocation {
  concurrent_bigmodel::Config config;
  std::vector<std::string> topics;  // when no topics file
  std::vector<concurrent_bigmodel::Row> rows;  // JSONL or CSV rows read from stdin (then no topics)
  std::string topics_file;          // a file to stream (stdin has been read into `topics` or `rows`)
  int iterations = 1;               // 0 = until signalled
  bool dry_run = false;             // --dry-run: estimate, send nothing
  std::string dry_run_output;       // --dry-run --output: the estimate's JSON goes here ("" = none)
};

// `concurrent_bigmodel serve`: the HTTP service (serve.hpp) over a pool of this configuration.
struct ServeInvocation {
  concurrent_bigmodel::Config config;
  ServeOptions options;
};

// `concurrent_bigmodel submit | work | collect | status`: a fleet's commands (docs/fleet.md).
struct FleetInvocation {
  enum class Command { submit, work, collect, status };
  Command command = Command::status;
  concurrent_bigmodel::Config config;  // submit: the job's settings; work: the node's
  std::string redis_url;               // checked; its password may be blanked out of argv
  std::string job;
  std::string topics_file;  // submit
  int iterations = 1;       // submit: other than 1, a fleet monitor (0: until stopped)
  double leader_lease_s = 15.0;  // submit, a monitor: --leader-lease
  std::string output;       // collect
  unsigned round = 0;       // collect: a monitor's round (0: the newest complete one)
  bool follow = false;      // collect
  double redis_wait_s = 10.0;
  double lease_grace_s = 30.0;  // work
  std::string node_name;        // work
  // work: fleet-wide limits (docs/fleet.md, "Fleet-wide limits"); checked by fleet::validate.
  int fleet_concurrency = 0;    // --fleet-concurrency: 0 = none
  double fleet_lease_s = 10.0;  // --fleet-lease
  std::int64_t fleet_rpm = 0;   // --fleet-rpm: 0 = none
  std::int64_t fleet_tpm = 0;   // --fleet-tpm: 0 = none
  std::string node_journal;     // work: where records wait while Redis is unavailable (none: memory)
};

// What parsing the command line decided.
struct CommandLine {
  std::optional<Invocation> run;  // set when a run should start
  int exit_status = 0;            // otherwise: exit with this (0 after --help/--version, 2 on bad usage)
  std::string message;            // printed to stdout (help, version) or stderr (errors)
  std::optional<ServeInvocation> serve;  // set when the service should start
  std::optional<FleetInvocation> fleet;  // set for a fleet command
};

CommandLine parse_command_line(int argc, char** argv);

}  // namespace cbm
