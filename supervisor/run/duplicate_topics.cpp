#include "duplicate_topics.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>


namespace cbm {

std::uint64_t topic_hash(std::string_view topic) { return task_hash(topic, {}); }

RoundSurvey survey_round(TopicSource& source) {
  std::vector<std::uint64_t> all;
  while (auto t = source.next()) all.push_back(task_hash(t->topic, t->fields));
  return survey_of(std::move(all));
}

RoundSurvey survey_of(std::vector<std::uint64_t> all) {
  std::sort(all.begin(), all.end());
  RoundSurvey survey;
  survey.topics = all.size();
  for (std::size_t i = 1; i < all.size(); ++i) {
    if (all[i] == all[i - 1] && (survey.duplicated.empty() || survey.duplicated.back() != all[i])) {
      survey.duplicated.push_back(all[i]);
    }
  }
  return survey;
}

DedupingSource::DedupingSource(TopicSource& inner, RunLedger& ledger, std::uint32_t round, RoundSurvey survey)
    : inner_(inner),
      ledger_(ledger),
      round_(round),
      total_(survey.complete ? std::optional<std::uint64_t>(survey.topics) : std::nullopt),
      duplicated_(std::move(survey.duplicated)) {}

std::optional<std::uint64_t> DedupingSource::known_total() const {
  if (auto inner = inner_.known_total()) return inner;
  return total_;
}

std::optional<TopicLine> DedupingSource::next() {
  while (auto t = inner_.next()) {
    ++consumed_;
    const std::uint64_t hash = task_hash(t->topic, t->fields);
    if (!ledger_.restored_topic_matches(round_, t->id, hash)) {
      throw std::runtime_error("--resume: topic " + std::to_string(t->id) + " ('" + t->topic.substr(0, 60) +
                               "') is not the topic the journal recorded at that position (or has other fields): the input changed "
                               "since; resume with the same input, or start a new run");
    }
    if (!std::binary_search(duplicated_.begin(), duplicated_.end(), hash)) return t;
    auto [it, first] = first_id_.try_emplace(task_key(t->topic, t->fields), t->id);
    if (first) {
      ledger_.expect_duplicates(round_, t->id);
      return t;
    }
    // A later occurrence of a topic finished in an earlier run (--resume) has no first record in
    // memory to copy: it is analysed like any other topic.
    if (ledger_.has(round_, it->second) && !ledger_.holds_result(round_, it->second)) return t;
    ledger_.record_duplicate(round_, t->id, it->second);
  }
  return std::nullopt;
}

}  // namespace cbm
