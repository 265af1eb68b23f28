// What a fleet reads back from Redis (outside input, so bounded and fuzzed: tests/fuzz/redis_reply_fuzz.cpp):
// a task stream's entry and a results stream's record. Depends on the protocol layer and the Redis
// client only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "redis_client.hpp"
#include "row_fields.hpp"
#include "task.hpp"

namespace cbm::fleet {

// A task as a node reads it from the stream: nullopt (with why) when the entry is not one.
struct FleetTask {
  std::string entry;  // the stream entry's id
  std::uint32_t round = 0;  // the round whose stream it came from (JobKeys; set by the node)
  std::uint64_t id = 0;
  std::string topic;
  Fields fields;
};
std::optional<FleetTask> task_of_entry(const redis::Reply& entry, std::string& why);

// A record read back from the results stream (a bounded parse), or why not.
std::optional<TaskResult> decode_result_record(std::string_view json, std::string& why);

}  // namespace cbm::fleet
