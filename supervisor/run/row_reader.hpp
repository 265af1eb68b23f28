// RowReader: the rows of a topics input, read as a stream from a FILE* (never the whole input in
// memory), in one of three formats (README.md, "Row inputs"):
//
//   text   one topic per line (topic_source.hpp); no fields.
//   jsonl  one JSON object per line: a string `topic` and any other fields, each a string, a number or
//          a boolean. A string renders as itself, a number as written in the line (`2.50` stays
//          `2.50`), a boolean as `true`/`false`. null, an array or an object as a value makes the row
//          invalid. Blank lines are skipped.
//   csv    RFC 4180: a header row naming the columns, one of them `topic`; fields separated by commas,
//          quoted with '"' when they hold a comma, a quote (doubled) or a line break; LF or CRLF
//          line ends; blank lines skipped. Values are kept as written (no trimming).
//
// A UTF-8 byte order mark at the start of a JSONL or CSV input is skipped. Every row's topic obeys the
// topic rules (topic_rules.hpp); field values must be UTF-8 without NUL bytes; a row longer than
// kMaxRowBytes is not read whole (the rest of it is skipped), nor is a text line: it holds at most the
// topic's kMaxTopicBytes after its leading whitespace, so a 50 MB line costs no more than that. A row
// that breaks a rule is skipped and reported with the number of the line it starts on (the first
// kKeptInvalidLines of them; the rest are only counted, so 2,000,000 bad lines cost a counter); the run
// goes on with the others. So is a row
// without a field the prompts use (`required`): the fields of a JSONL input are its rows' own, and only
// the first valid row's are checked against the prompts at the start.
//
// Ids are positions among the accepted rows (0, 1, 2, ...), stable for a given input.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "result.hpp"
#include "row_fields.hpp"

namespace cbm {

inline constexpr std::size_t kMaxRowBytes = 256 * 1024;
// Invalid lines a reader keeps to report one by one (for the log); the others are counted.
inline constexpr std::size_t kKeptInvalidLines = 100;

enum class InputFormat { text, jsonl, csv };
std::string_view to_string(InputFormat f);
std::optional<InputFormat> input_format_from_string(std::string_view s);
// By the path's extension: .jsonl and .ndjson are jsonl, .csv is csv (any case), anything else text.
InputFormat input_format_of_path(std::string_view path);

// How to read an input: its format and the fields every row must have (the prompts' placeholders).
struct InputSpec {
  InputFormat format = InputFormat::text;
  std::vector<std::string> required;
};

struct InvalidLine {
  std::uint64_t line_number;
  std::string reason;
};

struct TopicLine {
  std::uint64_t id;
  std::string topic;
  Fields fields;
};

// A JSONL line as a row (the topic checked, `required` not), or why it is not one.
Result<TopicRow, std::string> parse_jsonl_row(std::string_view line);

class RowReader {
 public:
  // Reads `in` (which must outlive the reader). For CSV, reads the header now and throws
  // std::invalid_argument when there is none, or it lacks a `topic` column or names a column twice,
  // not at all, or `sources` (the search results' placeholder).
  static std::unique_ptr<RowReader> make(std::FILE* in, const InputSpec& spec);
  virtual ~RowReader() = default;

  // The next valid row, or nullopt at the end of the input.
  virtual std::optional<TopicLine> next() = 0;
  // Rows skipped since the last call, among the first kKeptInvalidLines the reader skipped.
  std::vector<InvalidLine> take_invalid() { return std::exchange(invalid_, {}); }
  // Rows skipped so far (all of them, kept or not).
  std::uint64_t invalid_count() const { return invalid_count_; }
  // Lines read so far (a CSV's header and blank lines included).
  virtual std::uint64_t lines() const = 0;
  // The id the next valid row will have: how many rows were accepted so far.
  std::uint64_t next_id() const { return next_id_; }
  // The names of the fields the input offers the prompts: a CSV's header (but `topic`), the first valid
  // JSONL row's fields; none for text. For JSONL, reads up to the first valid row (call it first).
  virtual std::vector<std::string> field_names() = 0;

 protected:
  std::optional<TopicLine> accept(std::uint64_t line, Result<TopicRow, std::string> row,
                                  const std::vector<std::string>& required);
  void skip(std::uint64_t line, std::string reason);

 private:
  std::uint64_t next_id_ = 0;
  std::vector<InvalidLine> invalid_;
  std::uint64_t invalid_count_ = 0;
};

}  // namespace cbm
