// A fleet's job in Redis (docs/fleet.md): its keys, its Lua scripts, and the commands that only talk to
// Redis (submit, collect, status). The node (`work`) is fleet_node.hpp.
//
// Keys, all under the job's hash tag `cbm:{NAME}:` (one Redis Cluster slot):
//   meta      hash    settings (JournalSettings::encode: the resume fingerprint, one rule), input_format;
//                     a one-round job's round fields (below) too; a monitor's `round` (the current
//                     round), `iterations` (0: until stopped) and `finished`
//   stats     hash    succeeded, failed, duplicates, reclaimed, dead_lettered
//   nodes     hash    node name -> last heartbeat (ms since the epoch)
//   leader    string  a monitor's leader lease (leader_lease.hpp)
// A round's keys: a one-round job's directly under `cbm:{NAME}:`, round R of a monitor's under
// `cbm:{NAME}:r<R>:` (the leader deletes a round's keys when it starts the round after the next):
//   meta      hash    submitted (the enqueue cursor: ids below it are in the stream), total and
//                     complete (set when a submit read its whole input), created (ms)
//   tasks     stream  one entry per topic: id (its position among the input's accepted topics, as a
//                     local run's journal numbers it), topic, fields (JSON [[name, value], ...])
//             group   `nodes`: every node reads with XREADGROUP; the delivery count is the attempt count
//   results   stream  one entry per finished topic: id, record (the journal's record, result_codec)
//   done      hash    id -> succeeded | failed: the first result wins; what makes the report exactly-once
//   dups      hash    id -> the id of its first occurrence: a topic repeated in the input is run once
//                     and reported for each occurrence, as in a local run (duplicate_topics.hpp)
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fleet_records.hpp"
#include "journal.hpp"
#include "redis_client.hpp"
#include "run_config.hpp"

namespace cbm::fleet {

// The job's name: 1 to 64 of [A-Za-z0-9._-]. nullopt when valid, otherwise why not (naming it).
std::optional<std::string> job_name_problem(const std::string& name);

// A job's keys for one round: `round` 0 is a one-round job's only round, 1.. a monitor's rounds.
struct JobKeys {
  explicit JobKeys(const std::string& job, std::uint32_t round = 0);
  std::string meta, stats, nodes, leader;                      // the job's
  std::string round_meta, tasks, results, done, dups;          // the round's
  std::uint32_t round = 0;
  // The round number its records carry (a one-round job's is 1).
  std::uint32_t record_round() const { return round == 0 ? 1 : round; }
  static constexpr const char* kGroup = "nodes";
};

// The settings a job's nodes share differ from these: exit 2, the text naming each difference.
class SettingsMismatch : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What every command of a job needs: the client, the keys, the job's name.
struct JobHandle {
  JobHandle(const redis::RedisUrl& url, const std::string& job, std::chrono::milliseconds wait);
  redis::Client client;
  JobKeys keys;
  std::string name;
  std::chrono::milliseconds wait;  // how long submit, collect and status wait for Redis
};

// Creates the job (settings, task stream, group) or checks it: SettingsMismatch when its settings
// differ from `settings`. `create`: false (a node) refuses a job that does not exist yet.
void join_job(JobHandle& job, const JournalSettings& settings, InputFormat format, bool create);

// A signal's stop for submit and collect: set from the signal watcher's thread, waited on by the command.
class StopFlag {
 public:
  void set(int signal);
  int signal() const;
  // Sleeps up to `d`; true when stopped (at once, or during the wait).
  bool wait_for(std::chrono::milliseconds d);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int signal_ = 0;
};

// `concurrent_bigmodel submit`: enqueues the topics of config.topics_file (or its list) into the job,
// resumably; returns the exit status (0, 2 when the job's settings differ, 3 when Redis is unavailable).
// `iterations` other than 1 makes the job a fleet monitor (docs/fleet.md, "Fleet monitors"): this
// process runs its rounds while it holds the leader lease (`leader_ttl`), as a standby until then;
// `stop` (a signal) ends it: 128 + the signal, the lease handed over.
struct MonitorOptions {
  int iterations = 1;  // 0: until stopped
  std::chrono::milliseconds leader_ttl{15000};
  std::string holder;  // this process's name in the lease
};
int submit(const RunConfig& config, const redis::RedisUrl& url, const std::string& job,
           std::chrono::milliseconds wait, const MonitorOptions& monitor, StopFlag& stop);

// The round a monitor's nodes work on now (0: a one-round job); throws as the client does.
std::uint32_t current_round(JobHandle& job);

// `collect`: the job's report at `output` (the local run's format), atomically; with `follow`, again
// every second until the job is complete. Exit 0 (complete, all succeeded), 1 (complete, some failed),
// 4 (not complete yet: the report holds what is done), 3 (Redis unavailable).
inline constexpr int kExitJobIncomplete = 4;
// A monitor's report is of one round: `round` (0: the newest complete one, else the current one);
// the current round and the one before are kept in Redis.
int collect(const RunConfig& config, const redis::RedisUrl& url, const std::string& job,
            const std::filesystem::path& output, bool follow, std::chrono::milliseconds wait, std::uint32_t round);

// `status`: the job's counts on stdout; 0, or 3 when Redis is unavailable.
int status(const redis::RedisUrl& url, const std::string& job, std::chrono::milliseconds wait);

// The scripts (fleet_job.cpp has their text): run through Client::eval.
redis::Script enqueue_script();
redis::Script finish_script();
redis::Script extend_script();
redis::Script release_script();

}  // namespace cbm::fleet
