#include "duplicate_resolver.hpp"

namespace cbm {

TaskResult copy_for_duplicate(const TaskResult& original, std::uint64_t duplicate_id) {
  TaskResult copy = original;
  copy.id = duplicate_id;
  copy.duplicate_of = original.id;
  copy.attempts = 0;
  copy.usage = {};
  copy.execution_time = std::chrono::milliseconds(0);
  return copy;
}

void DuplicateResolver::expect(std::uint64_t id) { originals_.try_emplace(id); }

std::vector<TaskResult> DuplicateResolver::on_recorded(const TaskResult& record) {
  auto original = originals_.find(record.id);
  if (original == originals_.end()) return {};
  original->second = record;
  std::vector<TaskResult> copies;
  auto waiting = waiting_.find(record.id);
  if (waiting == waiting_.end()) return copies;
  copies.reserve(waiting->second.size());
  for (std::uint64_t duplicate : waiting->second) copies.push_back(copy_for_duplicate(record, duplicate));
  waiting_.erase(waiting);
  return copies;
}

std::optional<TaskResult> DuplicateResolver::copy_or_wait(std::uint64_t duplicate, std::uint64_t original) {
  auto it = originals_.find(original);
  if (it != originals_.end() && it->second) return copy_for_duplicate(*it->second, duplicate);
  waiting_[original].push_back(duplicate);
  return std::nullopt;
}

bool DuplicateResolver::holds(std::uint64_t id) const {
  auto it = originals_.find(id);
  return it != originals_.end() && it->second.has_value();
}

void DuplicateResolver::clear() {
  originals_.clear();
  waiting_.clear();
}

}  // namespace cbm
