// TopicSource: the topics of one round, read as a stream (never the whole list in memory).
//
// Input formats (--topics-file PATH | -, --input-format): text, one topic per line (CRLF accepted;
// blank lines and lines starting with '#' (after the whitespace) skipped; every other line is a topic
// by the rules of topic_rules.hpp), or rows of a topic and fields as JSONL or CSV (row_reader.hpp). A
// line or row that breaks the rules is skipped and reported (with its line number) through
// `take_invalid_lines()`; the run goes on with the others.
//
// Topic ids are positions among the accepted topics (0, 1, 2, ...), stable for a given input: --resume
// joins journal records to topics by id and checks the topic (and its fields) match.
//
// A topics file is opened once (input_stream.hpp). A regular file is streamed; any other input (a pipe,
// a FIFO, a device, stdin) is read once and held (read_held_input), within kMaxHeldInputBytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "row_reader.hpp"
#include "topic_rules.hpp"

namespace cbm {

class TopicSource {
 public:
  virtual ~TopicSource() = default;
  // The next topic, or nullopt when there is none: at the end of the round's input, or, while the
  // source is open(), until more arrive.
  virtual std::optional<TopicLine> next() = 0;
  // An open source (the HTTP service's queue of requests) may have nothing now and more later: a new
  // request, or room for a request's next topic when one of its own finishes. While it is open, an
  // executor whose next() came back empty waits instead of ending the round; the source calls
  // RunControl::notify() when it may have topics again, or closes. Ask open() before next(): a source
  // that closes between the two calls has handed out everything it was given before. A stop ends the
  // round whatever open() says.
  virtual bool open() const { return false; }
  // Whether a stop may record the topics it never read as one range of ids (UnreadTopics in task.hpp)
  // instead of one cancelled record each: true for an input that numbers its topics 0, 1, 2, ... in
  // the order next() hands them out and can be read again by --resume (a file, a list). The service's
  // queue cannot: each of its topics belongs to a request that waits for that topic's record.
  virtual bool unread_as_range() const { return false; }
  // How many topics (ids) the whole input has, when known without reading on; nullopt otherwise.
  virtual std::optional<std::uint64_t> known_total() const { return std::nullopt; }
  // Lines skipped since the last call, among the first kKeptInvalidLines (for the log).
  virtual std::vector<InvalidLine> take_invalid_lines() { return {}; }
  // Lines skipped so far, all of them (for the summary line and the report).
  virtual std::uint64_t invalid_count() const { return 0; }
};

// Topics given on the command line (or read from stdin once, for every round).
std::unique_ptr<TopicSource> topics_from_list(std::shared_ptr<const std::vector<std::string>> topics);
// Rows given as a list (the library's, or stdin's read once).
std::unique_ptr<TopicSource> topics_from_rows(std::shared_ptr<const std::vector<TopicRow>> rows);

// The rows of `in` (a regular file's stream, which must outlive the source) as they are read. Throws
// std::invalid_argument if it is a CSV file without a usable header.
std::unique_ptr<TopicSource> topics_from_stream(std::FILE* in, const InputSpec& spec);

// What an input held in memory may cost: its rows' bytes (topic, field names and values, and the
// containers' own size). Past it the read stops with an error (a regular file has no such bound: it is
// streamed).
inline constexpr std::size_t kMaxHeldInputBytes = 256 * 1024 * 1024;

// An input read whole into memory (stdin, a pipe, a FIFO, a device, a monitor's list).
struct HeldInput {
  std::vector<TopicRow> rows;
  std::vector<std::string> fields;    // the names the input offers the prompts (RowReader::field_names)
  std::vector<InvalidLine> invalid;   // the first kKeptInvalidLines skipped lines
  std::uint64_t invalid_count = 0;    // every skipped line
  std::uint64_t lines = 0;            // lines read
};
// Reads `in` to its end (or until its FILE* ends early, as InputStream's does at a stop). Throws
// std::invalid_argument for a CSV input without a usable header, and when the rows pass `max_bytes`
// (the message says how to stream the input instead).
HeldInput read_held_input(std::FILE* in, const InputSpec& spec, std::size_t max_bytes = kMaxHeldInputBytes);

// read_held_input's topics only (text input), its skipped lines in `invalid`.
std::vector<std::string> read_topic_lines(std::FILE* in, std::vector<InvalidLine>& invalid);

// "no topics in <name>: N lines, M invalid": an input without a valid topic (a usage error).
std::string no_topics_message(const std::string& name, std::uint64_t lines, std::uint64_t invalid);

}  // namespace cbm
