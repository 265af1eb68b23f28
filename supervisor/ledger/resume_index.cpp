#include "resume_index.hpp"

#include <algorithm>

#include "row_fields.hpp"

namespace cbm {
namespace {

// A stored hash is never 0, which marks a position with no restored record.
std::uint64_t stored(std::uint64_t topic_hash) { return topic_hash | 1; }

}  // namespace

void ResumeIndex::add(const TaskResult& record) {
  auto& hashes = hashes_[record.round];
  if (hashes.size() <= record.id) hashes.resize(std::max<std::size_t>(record.id + 1, hashes.size() * 2), 0);
  hashes[record.id] = stored(task_hash(record.topic, record.fields));
}

bool ResumeIndex::matches(std::uint32_t round, std::uint64_t id, std::uint64_t topic_hash) const {
  auto it = hashes_.find(round);
  if (it == hashes_.end() || id >= it->second.size() || it->second[id] == 0) return true;
  return it->second[id] == stored(topic_hash);
}

void ResumeIndex::forget(std::uint32_t round) { hashes_.erase(round); }

}  // namespace cbm
