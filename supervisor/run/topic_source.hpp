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
  // Lines skipped since the last call (for the log and the report).
  virtual std::vector<InvalidLine> take_invalid_lines() { return {}; }
};

// Topics given on the command line (or read from stdin once, for every round).
std::unique_ptr<TopicSource> topics_from_list(std::shared_ptr<const std::vector<std::string>> topics);
// Rows given as a list (the library's, or stdin's read once).
std::unique_ptr<TopicSource> topics_from_rows(std::shared_ptr<const std::vector<TopicRow>> rows);

// A file re-read from its start for every round. Throws std::runtime_error if it cannot be opened,
// std::invalid_argument if it is a CSV file without a usable header.
std::unique_ptr<TopicSource> topics_from_file(const std::string& path, const InputSpec& spec = {});

// The fields a file offers the prompts (RowReader::field_names). Throws as topics_from_file does.
std::vector<std::string> input_field_names(const std::string& path, InputFormat format);

// Reads a whole stream of topic lines (stdin) into a list, with the same rules.
std::vector<std::string> read_topic_lines(std::FILE* in, std::vector<InvalidLine>& invalid);
// Reads a whole stream of rows into a list; `fields` gets the names the input offers the prompts.
std::vector<TopicRow> read_topic_rows(std::FILE* in, const InputSpec& spec, std::vector<InvalidLine>& invalid,
                                      std::vector<std::string>& fields);

}  // namespace cbm
