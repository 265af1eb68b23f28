// Duplicate topics within a round are analysed once and reported for each occurrence: the later
// occurrences get a copy of the first one's terminal record, with `duplicate_of` set to its id.
//
// Two rows with the same topic and different fields are different tasks: the key is task_key
// (row_fields.hpp), which is the topic alone for text input.
//
// A streaming list cannot be held in memory, so duplicates are found in two steps: a counting pass
// over the round's input (a regular file read twice through one descriptor, or a list in memory: an
// input that can be read only once is held, topic_plan.hpp) collects 64-bit hashes of the topics that occur more than once (sorting
// 8 bytes per topic: 8 MB for a million topics, released after the pass); then, while the round runs,
// only topics with such a hash are remembered (by their text, so a hash collision costs memory, never
// a wrong answer).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "run_ledger.hpp"
#include "topic_source.hpp"

namespace cbm {

// The hash of a task without fields (text input): task_hash(topic, {}).
std::uint64_t topic_hash(std::string_view topic);

// One pass over a round's input (read to its end): how many topics, and the sorted hashes of those
// that occur more than once.
struct RoundSurvey {
  std::size_t topics = 0;
  std::vector<std::uint64_t> duplicated;
  bool complete = true;  // false: a stop cut the pass short (`topics` is then not the input's size)
};
RoundSurvey survey_round(TopicSource& source);
// The survey of a round's task hashes (task_hash), in any order.
RoundSurvey survey_of(std::vector<std::uint64_t> hashes);

// Wraps a round's source: yields each distinct topic once and hands later occurrences to the ledger
// (RunLedger::record_duplicate), which records them when the first occurrence ends.
class DedupingSource final : public TopicSource {
 public:
  // `survey`: the round's, of the same input.
  DedupingSource(TopicSource& inner, RunLedger& ledger, std::uint32_t round, RoundSurvey survey);

  std::optional<TopicLine> next() override;
  std::vector<InvalidLine> take_invalid_lines() override { return inner_.take_invalid_lines(); }
  bool unread_as_range() const override { return inner_.unread_as_range(); }
  std::optional<std::uint64_t> known_total() const override;
  std::uint64_t invalid_count() const override { return inner_.invalid_count(); }

  // Topics read from the input so far, duplicates included.
  std::size_t consumed() const { return consumed_; }

 private:
  TopicSource& inner_;
  RunLedger& ledger_;
  std::uint32_t round_;
  std::optional<std::uint64_t> total_;  // topics (ids) in the input, duplicates included, when known
  std::vector<std::uint64_t> duplicated_;
  std::unordered_map<std::string, std::uint64_t> first_id_;  // task_key -> id, only for duplicated hashes
  std::size_t consumed_ = 0;
};

}  // namespace cbm
