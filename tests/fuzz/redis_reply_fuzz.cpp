// libFuzzer target: Redis replies are outside input. Any bytes fed to the client's bounded reader
// (common/redis) must give a bounded reply or an error, never a crash, a hang or an allocation past the
// bounds; and every reply read as a fleet's task entry or result record (supervisor/fleet/fleet_records)
// must give a task, a record or a reason.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fleet_records.hpp"
#include "redis_client.hpp"

namespace {

void read_as_records(const cbm::redis::Reply& r) {
  std::string why;
  const auto task = cbm::fleet::task_of_entry(r, why);
  if (!task && why.empty()) __builtin_trap();  // a refusal says why
  if (r.is_string()) {
    why.clear();
    const auto record = cbm::fleet::decode_result_record(r.str, why);
    if (!record && why.empty()) __builtin_trap();
  }
  if (r.is_array()) {
    for (const auto& e : r.elements) read_as_records(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cbm::redis::ReplyBounds bounds;
  bounds.max_array = 1000;
  bounds.max_string = 1 << 16;
  bounds.max_values = 10000;
  bounds.max_bytes = 1 << 18;
  redisReader* reader = redisReaderCreate();
  cbm::redis::bound_reader(reader, &bounds);
  redisReaderFeed(reader, reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < 64; ++i) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader, &raw) != REDIS_OK || raw == nullptr) break;
    try {
      const cbm::redis::Reply r = cbm::redis::copy_reply(raw, bounds);
      read_as_records(r);
    } catch (const cbm::redis::ProtocolError&) {
      // over a whole-reply bound: refused
    }
    freeReplyObject(raw);
  }
  redisReaderFree(reader);
  return 0;
}
