// RunLedger: the terminal records of a run, per round, and the report built from them.
//
// Every task of every round must end here exactly once (the "nothing lost, nothing duplicated"
// guarantee): `record` refuses a second record for the same (round, id) and says so.
// Thread-safe: the threading executor records from its worker threads.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "run_config.hpp"
#include "task.hpp"

namespace cbm {

struct RunTotals {
  std::size_t total = 0;
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  std::size_t cancelled = 0;
  std::size_t attempts = 0;
  std::chrono::milliseconds execution_time_sum{0};  // over tasks that ran at least one attempt
  std::size_t timed_tasks = 0;
  Usage usage;

  void add(const TaskResult& r);
};

class RunLedger {
 public:
  explicit RunLedger(const RunConfig& config);

  void begin_round(std::uint32_t round, std::size_t tasks);
  // False (and nothing recorded) when this (round, id) already has its terminal record.
  bool record(TaskResult result);
  void end_round(std::uint32_t round);

  void mark_interrupted(int signal);
  void mark_aborted(std::string reason);

  RunTotals totals() const;
  std::optional<int> interrupted_by() const;
  std::optional<std::string> abort_reason() const;
  bool has(std::uint32_t round, std::uint64_t id) const;

  // The report document (see README "Report"); `exit_status` is what the process will exit with.
  std::string report_json(int exit_status) const;

 private:
  struct Round {
    std::uint32_t number = 0;
    std::size_t planned = 0;
    WallClock::time_point started{};
    std::optional<WallClock::time_point> finished;
    RunTotals totals;
    std::map<std::uint64_t, TaskResult> results;  // by task id: report order = input order
  };

  const RunConfig& config_;
  mutable std::mutex mu_;
  WallClock::time_point started_;
  std::map<std::uint32_t, Round> rounds_;
  RunTotals totals_;
  std::optional<int> interrupted_by_;
  std::optional<std::string> abort_reason_;
};

}  // namespace cbm
