// A fleet's job in Redis (docs/fleet.md): its keys, its Lua scripts, and the commands that only talk to
// Redis (submit, collect, status). The node (`work`) is fleet_node.hpp.
//
// Keys, all under the job's hash tag `cbm:{NAME}:` (one Redis Cluster slot):
//   meta      hash    settings (JournalSettings::encode: the resume fingerprint, one rule), input_format,
//                     submitted (the enqueue cursor: ids below it are in the stream), total and
//                     complete (set when a submit read its whole input), created (ms)
//   tasks     stream  one entry per topic: id (its position among the input's accepted topics, as a
//                     local run's journal numbers it), topic, fields (JSON [[name, value], ...])
//             group   `nodes`: every node reads with XREADGROUP; the delivery count is the attempt count
//   results   stream  one entry per finished topic: id, record (the journal's record, result_codec)
//   done      hash    id -> succeeded | failed: the first result wins; what makes the report exactly-once
//   dups      hash    id -> the id of its first occurrence: a topic repeated in the input is run once
//                     and reported for each occurrence, as in a local run (duplicate_topics.hpp)
//   stats     hash    succeeded, failed, duplicates, reclaimed, dead_lettered
//   nodes     hash    node name -> last heartbeat (ms since the epoch)
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
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

struct JobKeys {
  explicit JobKeys(const std::string& job);
  std::string meta, tasks, results, done, dups, stats, nodes;
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


// `concurrent_bigmodel submit`: enqueues the topics of config.topics_file (or its list) into the job,
// resumably; returns the exit status (0, or 3 when Redis is unavailable).
int submit(const RunConfig& config, const redis::RedisUrl& url, const std::string& job,
           std::chrono::milliseconds wait);

// `collect`: the job's report at `output` (the local run's format), atomically; with `follow`, again
// every second until the job is complete. Exit 0 (complete, all succeeded), 1 (complete, some failed),
// 4 (not complete yet: the report holds what is done), 3 (Redis unavailable).
inline constexpr int kExitJobIncomplete = 4;
int collect(const RunConfig& config, const redis::RedisUrl& url, const std::string& job,
            const std::filesystem::path& output, bool follow, std::chrono::milliseconds wait);

// `status`: the job's counts on stdout; 0, or 3 when Redis is unavailable.
int status(const redis::RedisUrl& url, const std::string& job, std::chrono::milliseconds wait);

// The scripts (fleet_job.cpp has their text): run through Client::eval.
redis::Script enqueue_script();
redis::Script finish_script();
redis::Script extend_script();
redis::Script release_script();

}  // namespace cbm::fleet
