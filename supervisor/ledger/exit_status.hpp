// The exit status: one rule for a run (the CLI's and the library's), a batch the service answers, and
// the service itself. The statuses are documented in --help, the README and DESIGN section 1.
#pragma once

namespace cbm {

inline constexpr int kExitAllSucceeded = 0;
inline constexpr int kExitSomeFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAborted = 3;

// How a run ended, in what its exit status tells.
struct RunEnding {
  bool aborted = false;       // a run-fatal API error, or workers that keep crashing
  int stop_signal = 0;        // the signal whose stop the status reports (0: none)
  bool all_succeeded = true;  // every task has a succeeded record
};

// An abort outranks a stop: a bad key or a crashing worker is what the operator must fix, even when a
// TERM came while the run wound down (and a unit that treats 143 as success must not hide it).
constexpr int exit_status_of(const RunEnding& e) {
  if (e.aborted) return kExitAborted;
  if (e.stop_signal != 0) return 128 + e.stop_signal;
  return e.all_succeeded ? kExitAllSucceeded : kExitSomeFailed;
}

}  // namespace cbm
