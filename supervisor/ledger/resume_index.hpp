// ResumeIndex: which topic each record restored by --resume was of. Records join topics by id (the
// topic's position in the input), so a rerun over a changed input would skip the wrong topics: the
// rerun checks each topic it reads (with its fields: task_hash) against the record restored at its
// position.
//
// 8 bytes per position of a round with restored records, dropped when that round ends. Passive: the
// ledger holds it under its lock.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "task.hpp"

namespace cbm {

class ResumeIndex {
 public:
  // `record` was read back from the journal.
  void add(const TaskResult& record);
  // False when a record was restored at (round, id) and was of another topic; true when it was of this
  // one, or when none was restored there.
  bool matches(std::uint32_t round, std::uint64_t id, std::uint64_t topic_hash) const;
  // `round` ended: its topics will not be read again.
  void forget(std::uint32_t round);

 private:
  std::map<std::uint32_t, std::vector<std::uint64_t>> hashes_;  // round -> id -> topic hash | 1 (0: none)
};

}  // namespace cbm
