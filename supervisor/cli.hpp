// The command line: the Python tool's flags with its defaults, then ours (`--help` groups them).
#pragma once

#include <optional>
#include <string>

#include "run_config.hpp"

namespace cbm {

// What parsing the command line decided.
struct CommandLine {
  std::optional<RunConfig> config;  // set when a run should start
  int exit_status = 0;              // otherwise: exit with this (0 after --help/--version, 2 on bad usage)
  std::string message;              // printed to stdout (help, version) or stderr (errors)
};

CommandLine parse_command_line(int argc, char** argv);

// Exit statuses (documented in --help and the README).
inline constexpr int kExitAllSucceeded = 0;
inline constexpr int kExitSomeFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAborted = 3;

}  // namespace cbm
