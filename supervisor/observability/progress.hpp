// Progress: the live status of a run on stderr.
//
// On a terminal, one line redrawn in place at most 5 times a second; otherwise (CI, cron, `2> file`)
// a plain line every --progress-interval seconds; nothing under --quiet. Executors call tick() from
// their loops (any thread); counts of finished tasks come from the ledger.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "run_ledger.hpp"

namespace cbm {

struct ExecutorGauges {
  std::size_t in_flight = 0;
  std::uint64_t restarts = 0;
  int limit = 0;  // the adaptive in-flight limit; 0 when the executor has none
  std::optional<WallClock::time_point> paused_until;  // a usage cap or a daily budget holds dispatch back
  std::string_view paused_for = "usage cap";          // which
};

// `t` as the local time of day, "HH:MM" (what the status line says of a usage cap's reset).
std::string local_time_of_day(WallClock::time_point t);

class Progress {
 public:
  Progress(const RunLedger& ledger, bool quiet, std::chrono::milliseconds plain_interval);
  ~Progress();  // clears the live line

  // A new round with `expected` topics when known.
  void begin_round(std::uint32_t round, std::optional<std::size_t> expected);
  // Redraws if it is time to. Cheap when it is not.
  void tick(const ExecutorGauges& gauges);
  // Clears the live line (before a final summary is printed).
  void finish();
  // How long until the next redraw is due (an executor's loop wakes for it).
  std::chrono::milliseconds next_due() const;

  // The status text (also the SIGUSR1 log line).
  std::string line(const ExecutorGauges& gauges) const;

 private:
  const RunLedger& ledger_;
  const bool enabled_;
  const bool tty_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::uint32_t round_ = 0;
  std::optional<std::size_t> expected_;
  std::size_t done_at_round_start_ = 0;
  std::size_t attempts_at_round_start_ = 0;
  std::chrono::steady_clock::time_point round_started_{};
  std::chrono::steady_clock::time_point last_draw_{};
  bool drawn_ = false;
  std::size_t printed_total_ = static_cast<std::size_t>(-1);  // records when the last plain line was printed
};

}  // namespace cbm
