// TopicPlan: where each round's topics come from, and the one read of the input before the run starts.
//
//   a list (--topics, stdin read by the CLI, the library's rows): held, every round.
//   a regular topics file, one round: streamed. It is opened once; a first pass counts its topics and
//     finds the repeated ones (duplicate_topics.hpp), then the round reads it again from its start on
//     the same descriptor. Memory stays flat whatever its size.
//   any other topics file (a pipe, a FIFO, a device), or a monitor's file (--iterations 0 or N > 1):
//     read once into memory (read_held_input, within kMaxHeldInputBytes) and held for every round. A
//     monitor rereads its file on SIGHUP, keeping the current list when the new one is unreadable or
//     has no topics.
//
// Every pass over the input before the round honours `stop` (input_stream.hpp): a stop ends the pass
// at once, and the run goes on with what was read (its topics are reported as cancelled). An input
// without a valid topic, read to its end, is a usage error (require_topics).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "duplicate_topics.hpp"
#include "input_stream.hpp"
#include "logger.hpp"
#include "run_config.hpp"
#include "topic_source.hpp"

namespace cbm {

// Logs the skipped lines one by one (`first`, at most kKeptInvalidLines), then, when there were more
// (`count` in all), one line with their number.
void log_invalid_lines(Logger& log, const std::vector<InvalidLine>& first, std::uint64_t count);

class TopicPlan {
 public:
  // Reads what must be read before the run: a held file whole, a streamed file's counting pass.
  // Throws std::invalid_argument for a usage error (a directory, an unusable CSV header, no topics,
  // a held input past its bound), std::runtime_error when the file cannot be opened.
  TopicPlan(const RunConfig& cfg, StopCheck stop);
  ~TopicPlan();

  // The fields the input offers the prompts (a CSV's header, the first JSONL row's, a list's first
  // row's; none for text).
  const std::vector<std::string>& field_names() const { return fields_; }
  // Throws std::invalid_argument ("no topics in <path>: N lines, M invalid") when the input, read to
  // its end, had no valid topic. Asked after the placeholders are checked: a row is invalid when it
  // lacks a field the prompts use, and a misspelt placeholder is the error to report then.
  void require_topics() const;

  // Once the log is open: the lines the held read skipped (a streamed file's are the round's own).
  // Returns how many were skipped.
  std::uint64_t log_held_invalid_lines(Logger& log);
  // How many lines the held read skipped (none for a streamed file: its round's source counts them).
  std::uint64_t held_invalid_count() const { return held_invalid_count_; }

  struct Round {
    std::unique_ptr<TopicSource> source;
    RoundSurvey survey;  // counted before the round: its topics (duplicates included), the repeated ones
  };
  // The next round's topics.
  Round next_round();

  // SIGHUP: reread the file for the next round (a monitor's; a one-round run has nothing to reread).
  void on_reload_request(Logger& log);

 private:
  bool reload(std::unique_ptr<InputStream> stream, Logger* log);

  const RunConfig& cfg_;
  const StopCheck stop_;
  const InputSpec spec_;
  std::vector<std::string> fields_;
  std::optional<std::string> no_topics_;
  // Streamed: the file and its counting pass.
  std::unique_ptr<InputStream> stream_;
  RoundSurvey stream_survey_;
  // Held: the list, and what its read skipped.
  std::shared_ptr<const std::vector<TopicRow>> list_;
  std::vector<InvalidLine> held_invalid_;
  std::uint64_t held_invalid_count_ = 0;
};

}  // namespace cbm
