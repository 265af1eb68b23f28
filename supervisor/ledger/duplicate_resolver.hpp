// DuplicateResolver: the records of a round's repeated topics (duplicate_topics.hpp finds them). The
// first occurrence runs; each later one gets a copy of its terminal record, at once when the first has
// ended, else when it ends.
//
// Passive: the ledger drives it under its lock, so an original's record and the copies waiting for it
// are recorded in one step, and a duplicate registered while its original ends is never lost between
// the two. Holds only the round in progress: the originals expected, their records, the waiting copies.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "task.hpp"

namespace cbm {

class DuplicateResolver {
 public:
  // `id` is the first occurrence of a repeated topic: keep its record when it comes.
  void expect(std::uint64_t id);
  // `record` was just recorded: the copies that waited for it (none unless it is an expected original).
  std::vector<TaskResult> on_recorded(const TaskResult& record);
  // `duplicate` repeats `original`: its copy now if the original's record is here, else nullopt (the
  // copy is made by on_recorded when the original ends).
  std::optional<TaskResult> copy_or_wait(std::uint64_t duplicate, std::uint64_t original);
  // True when `id`'s record is kept here for copies.
  bool holds(std::uint64_t id) const;
  // The round ended: nothing more will be copied.
  void clear();

 private:
  std::map<std::uint64_t, std::optional<TaskResult>> originals_;
  std::map<std::uint64_t, std::vector<std::uint64_t>> waiting_;  // original -> its duplicates
};

// `original`'s record for its later occurrence `duplicate_id`: it cost no API work, so it adds no
// attempts, tokens or execution time to the totals.
TaskResult copy_for_duplicate(const TaskResult& original, std::uint64_t duplicate_id);

}  // namespace cbm
