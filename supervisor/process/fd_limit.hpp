// How many files the run may open. Many transfers or workers at once need more descriptors than the
// usual soft limit of 1,024 (asyncio mode at --concurrency 1000 holds 1,000 sockets), so the
// supervisor raises its soft limit to the hard one first, and refuses a concurrency that cannot fit.
#pragma once

#include <cstdint>
#include <string>

#include "run_config.hpp"

namespace cbm {

// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the soft limit now in force.
std::uint64_t raise_open_file_limit();

// About how many descriptors a run of `config` holds at its peak (its mode, --concurrency, --workers).
std::uint64_t open_files_needed(const RunConfig& config);

// Throws std::runtime_error naming --concurrency, the need and the limit when the run cannot fit.
void ensure_open_file_limit(const RunConfig& config);

}  // namespace cbm
