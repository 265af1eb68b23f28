// FleetNode: `concurrent_bigmodel work`, one node of a fleet (docs/fleet.md). The node is a topic
// source and an observer for the local engine, as the HTTP service's queue is (batch_queue.hpp): its
// one endless round runs the job's tasks with the engine of the configured mode, so retries, records,
// LangSmith and metrics are the engine's, as in a local run.
//
// One thread talks to Redis (the engine's thread never waits on it):
//   - reads tasks (XREADGROUP) up to the free capacity (--concurrency less the tasks it holds), after
//     reclaiming those idle past the lease from any node (XAUTOCLAIM; stats `reclaimed`);
//   - writes each terminal record with the finish script (results entry + done index + XACK, the first
//     result winning; a later one counted as `duplicates`);
//   - extends the leases of the tasks it holds (extend script) and writes its heartbeat;
//   - hands back what it will not run (the release script): cancelled tasks, and what it holds at a stop.
// The delivery count of an entry is its attempt count across the fleet: a task delivered more than
// --max-retries + 1 times gets a failed (dead-letter) record instead of running again.
//
// Redis unavailable: the node takes no task, keeps its finished records (in memory, and in the node
// journal when --node-journal names one) and writes them once Redis is back (the done index drops a
// second copy); it reconnects on the client's backoff.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fleet_job.hpp"
#include "logger.hpp"
#include "run_config.hpp"
#include "run_control.hpp"
#include "run_observer.hpp"
#include "topic_source.hpp"

namespace cbm {
class Metrics;
}

namespace cbm::fleet {

struct NodeOptions {
  std::string name;                  // the consumer's name; unique per node (host-pid by default)
  std::chrono::milliseconds grace{30000};  // the lease's grace (--lease-grace)
  std::chrono::milliseconds poll{50};      // how often the node looks for tasks when it has room
  // --node-journal: where finished records wait while Redis is unavailable (none: in memory only). A
  // node started with a journal left by a node that could not write it writes its records first.
  std::filesystem::path journal;
};

// The lease: how long a task may stay idle (not extended) before another node takes it.
// --timeout x (--max-retries + 1) + grace: a task's every attempt may run to its deadline before a
// live node's extension is even missed... and the node extends every third of it.
std::chrono::milliseconds lease_of(const RunConfig& config, std::chrono::milliseconds grace);

// The default node name: hostname-pid.
std::string default_node_name();

class FleetNode final : public TopicSource, public RunObserver {
 public:
  FleetNode(const RunConfig& config, const redis::RedisUrl& url, std::string job, NodeOptions options);
  ~FleetNode() override;

  // Joins the job (exit 2 when its settings differ, 3 when Redis stays unavailable), then runs until a
  // stop; returns the exit status (128 + the signal after a drain, 3 when the pool aborted).
  int run();
  // From the signal watcher: the first stops taking tasks and drains; a later one cancels what runs.
  void stop_by_signal(int signal);

  // TopicSource
  std::optional<TopicLine> next() override;
  bool open() const override;
  // RunObserver
  void task_finished(const TaskResult& result) override;

  struct Counts {
    std::uint64_t reclaimed = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t dead_lettered = 0;
  };
  Counts counts() const;

 private:
  // An entry of a round's stream (a monitor's node holds entries of two rounds at a switch).
  using Entry = std::pair<std::uint32_t, std::string>;  // round, stream entry id
  struct Held {
    std::string entry;
    std::uint32_t round = 0;
    std::uint64_t id = 0;
  };
  struct Finished {
    std::string entry;
    std::uint32_t round = 0;
    std::uint64_t id = 0;
    std::string record;
    std::string status;
    bool dead = false;
  };
  void redis_loop();
  void step(Logger& log);
  void fetch(Logger& log, std::size_t room);
  void reclaim(Logger& log, std::size_t room);
  void take(const redis::Reply& entry, long long deliveries, Logger& log);
  // A monitor's current round (the leader moves it): true when there is a round to take tasks from.
  bool follow_round(Logger& log);
  void dead_letter(const FleetTask& t, long long deliveries);
  std::size_t room() const;
  // Redis unavailable: the records waiting are written to the node journal (atomically, whole).
  void spill(Logger& log);
  // At the start: the records a previous node left in the node journal, queued to be written.
  std::size_t load_journal();

  const RunConfig& config_;
  JobHandle job_;
  JobKeys keys_;  // the round tasks are taken from (a one-round job's only one)
  NodeOptions options_;
  const std::chrono::milliseconds lease_;
  const long long max_deliveries_;
  RunControl control_;
  redis::Script finish_ = finish_script();
  redis::Script extend_ = extend_script();
  redis::Script release_ = release_script();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;   // no more tasks taken (a stop)
  bool quit_ = false;     // the Redis thread ends once the outbox is empty...
  bool give_up_ = false;  // ...or at once (Redis stayed down past the drain grace)
  std::deque<FleetTask> buffer_;                     // read, not yet handed to the engine
  std::unordered_map<std::uint64_t, Held> out_;      // local task id -> its entry
  std::set<Entry> held_entries_;                     // entries in buffer_ or out_
  std::deque<Finished> outbox_;                      // records waiting to be written
  std::vector<Entry> to_release_;                    // entries to hand back ("ack:<id>": acknowledge)
  std::uint64_t next_local_ = 0;
  Counts counts_;
  std::string autoclaim_cursor_ = "0-0";
  std::chrono::steady_clock::time_point next_extend_{}, next_reclaim_{};
  bool redis_down_logged_ = false;
  std::string last_server_error_;  // the last error reply logged (repeats are not)
  bool outbox_changed_ = false;  // since the last spill
  bool journal_written_ = false; // the node journal holds records not yet known written
  Logger* log_ = nullptr;
  Metrics* metrics_ = nullptr;  // the run's, with --metrics-addr
  std::thread thread_;
};

}  // namespace cbm::fleet
