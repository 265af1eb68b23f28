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

// What parsing the command line decided.
struct CommandLine {
  std::optional<Invocation> run;  // set when a run should start
  int exit_status = 0;            // otherwise: exit with this (0 after --help/--version, 2 on bad usage)
  std::string message;            // printed to stdout (help, version) or stderr (errors)
  std::optional<ServeInvocation> serve;  // set when the service should start
};

CommandLine parse_command_line(int argc, char** argv);

}  // namespace cbm
