#include "row_reader.hpp"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include "topic_rules.hpp"

namespace cbm {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool is_space_byte(int c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

// Lines of the text format, each holding at most its topic's kMaxTopicBytes: leading whitespace is
// skipped unheld, and once kMaxTopicBytes are held the rest of the line is only scanned (trailing
// whitespace keeps the topic valid; any other byte makes it too long, and its trimmed length is
// counted for the reason). A 50 MB line costs one 4 KiB buffer.
class TextLineReader {
 public:
  explicit TextLineReader(std::FILE* f) : f_(f) {}

  struct Line {
    std::string_view held;     // from the first non-space byte; at most kMaxTopicBytes
    std::uint64_t trimmed = 0;  // the length of the trimmed line, when longer than what is held
  };

  std::optional<Line> next() {
    held_.clear();
    int c = 0;
    bool any = false;
    std::uint64_t scanned = 0;    // bytes since the first non-space byte
    std::uint64_t last_word = 0;  // scanned up to the last non-space byte
    while ((c = getc_unlocked(f_)) != EOF) {
      any = true;
      if (c == '\n') break;
      if (held_.empty() && scanned == 0 && is_space_byte(c)) continue;
      ++scanned;
      if (!is_space_byte(c)) last_word = scanned;
      if (held_.size() < kMaxTopicBytes) held_ += static_cast<char>(c);
    }
    if (!any) return std::nullopt;
    return Line{held_, last_word > held_.size() ? last_word : 0};
  }

 private:
  std::FILE* f_;
  std::string held_;
};

// Bytes of a FILE*, without the UTF-8 byte order mark it may start with.
class ByteSource {
 public:
  explicit ByteSource(std::FILE* f) : f_(f) {
    int c = 0;
    while (held_ < kBom.size() && (c = getc_unlocked(f_)) != EOF) head_[held_++] = static_cast<char>(c);
    if (std::string_view(head_, held_) == kBom) held_ = 0;
  }
  int get() {
    if (next_ < held_) return static_cast<unsigned char>(head_[next_++]);
    return getc_unlocked(f_);
  }

 private:
  std::FILE* f_;
  char head_[3] = {};
  std::size_t held_ = 0;
  std::size_t next_ = 0;
};

// Lines of at most kMaxRowBytes; a longer line is reported as such and the rest of it skipped.
class BoundedLineReader {
 public:
  explicit BoundedLineReader(std::FILE* f) : in_(f) {}

  struct Line {
    std::uint64_t number;
    std::string_view text;
    bool too_long;
  };

  std::optional<Line> next() {
    line_.clear();
    bool too_long = false;
    int c = 0;
    bool any = false;
    while ((c = in_.get()) != EOF) {
      any = true;
      if (c == '\n') break;
      if (line_.size() < kMaxRowBytes + 1) {
        line_ += static_cast<char>(c);
      } else {
        too_long = true;
      }
    }
    if (!any) return std::nullopt;
    ++number_;
    if (line_.ends_with('\r')) line_.pop_back();
    if (line_.size() > kMaxRowBytes) too_long = true;
    return Line{number_, line_, too_long};
  }
  std::uint64_t number() const { return number_; }

 private:
  ByteSource in_;
  std::string line_;
  std::uint64_t number_ = 0;
};

std::string too_long_reason() {
  return "longer than " + std::to_string(kMaxRowBytes) + " bytes";
}

// A field value: UTF-8, no NUL byte. Empty when it is fine, else why not.
Result<std::string, std::string> row_topic(std::string_view given) {
  auto topic = checked_topic(given);
  if (!topic) return Err{"topic " + topic.error().what};
  return std::move(topic).value();
}

// SAX handler for one JSONL row: a flat object of strings, numbers (their text as written) and
// booleans. Stops at the first value of another kind.
struct RowHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RowHandler> {
  int depth = 0;
  bool seen_object = false;
  std::string key;
  std::optional<std::string> topic;
  Fields fields;
  std::string problem;

  bool stop(std::string why) {
    if (problem.empty()) problem = std::move(why);
    return false;
  }
  bool value(std::string text, bool is_string) {
    if (depth != 1) return stop("not a JSON object");
    if (key == "topic") {
      if (!is_string) return stop("topic is not a string");
      topic = std::move(text);
      return true;
    }
    if (find_field(fields, key) != nullptr) return stop("field '" + key + "' given twice");
    fields.push_back({key, std::move(text)});
    return true;
  }
  bool Default() { return stop(depth == 0 ? "not a JSON object" : "field '" + key + "' is null"); }
  bool Bool(bool b) { return value(b ? "true" : "false", false); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return value(std::string(s, n), false); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return value(std::string(s, n), true); }
  bool StartObject() {
    if (depth > 0) return stop("field '" + key + "' is an object (only strings, numbers and booleans)");
    ++depth;
    seen_object = true;
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    key.assign(s, n);
    if (key == "topic" && topic) return stop("field 'topic' given twice");
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth;
    return true;
  }
  bool StartArray() {
    return stop(depth == 0 ? "not a JSON object"
                           : "field '" + key + "' is an array (only strings, numbers and booleans)");
  }
};

class TextReader final : public RowReader {
 public:
  explicit TextReader(std::FILE* in) : lines_(in) {}
  std::optional<TopicLine> next() override {
    while (auto raw = lines_.next()) {
      ++line_number_;
      if (raw->held.starts_with('#')) continue;
      if (raw->trimmed > 0) {  // a topic of more than kMaxTopicBytes: the rest was not held
        skip(line_number_, "longer than " + std::to_string(kMaxTopicBytes) + " bytes (" +
                               std::to_string(raw->trimmed) + ")");
        continue;
      }
      const std::string_view line = trim_topic(raw->held);
      if (line.empty() || line.starts_with('#')) continue;
      auto topic = checked_topic(line);  // a line is its topic: the reason needs no "topic"
      Result<TopicRow, std::string> row =
          topic ? Result<TopicRow, std::string>(TopicRow{std::move(topic).value(), {}})
                : Err{std::move(topic.error().what)};
      if (auto t = accept(line_number_, std::move(row), {})) return t;
    }
    return std::nullopt;
  }
  std::vector<std::string> field_names() override { return {}; }
  std::uint64_t lines() const override { return line_number_; }

 private:
  TextLineReader lines_;
  std::uint64_t line_number_ = 0;
};

class JsonlReader final : public RowReader {
 public:
  JsonlReader(std::FILE* in, std::vector<std::string> required)
      : lines_(in), required_(std::move(required)) {}

  std::optional<TopicLine> next() override {
    if (peeked_) {
      auto [line, row] = std::move(*peeked_);
      peeked_.reset();
      if (auto t = accept(line, std::move(row), required_)) return t;
    }
    while (auto row = read()) {
      if (auto t = accept(row->first, std::move(row->second), required_)) return t;
    }
    return std::nullopt;
  }

  std::vector<std::string> field_names() override {
    if (!peeked_) {
      while (auto row = read()) {
        if (row->second.ok()) {
          peeked_ = std::move(row);
          break;
        }
        accept(row->first, std::move(row->second), required_);  // reported as invalid
      }
    }
    std::vector<std::string> names;
    if (peeked_) {
      for (const auto& f : peeked_->second.value().fields) names.push_back(f.name);
    }
    return names;
  }

 private:
  using NumberedRow = std::pair<std::uint64_t, Result<TopicRow, std::string>>;

  std::optional<NumberedRow> read() {
    while (auto line = lines_.next()) {
      if (line->too_long) return NumberedRow{line->number, Err{too_long_reason()}};
      if (trim_topic(line->text).empty()) continue;
      return NumberedRow{line->number, parse_jsonl_row(line->text)};
    }
    return std::nullopt;
  }

  BoundedLineReader lines_;
  std::vector<std::string> required_;
  std::optional<NumberedRow> peeked_;

 public:
  std::uint64_t lines() const override { return lines_.number(); }
};

// RFC 4180 records, read a byte at a time: quoted fields may hold commas, quotes ("") and line breaks.
class CsvReader final : public RowReader {
 public:
  CsvReader(std::FILE* in, std::vector<std::string> required) : in_(in), required_(std::move(required)) {
    std::vector<std::string> header;
    std::string problem;
    std::uint64_t line = 0;
    do {
      if (!read_record(header, problem, line)) throw std::invalid_argument("the CSV input has no header row");
    } while (problem.empty() && header.size() == 1 && header[0].empty());
    if (!problem.empty())
      throw std::invalid_argument("the CSV header (line " + std::to_string(line) + ") " + problem);
    for (std::size_t i = 0; i < header.size(); ++i) {
      std::string name(trim_topic(header[i]));
      if (name.empty())
        throw std::invalid_argument("the CSV header's column " + std::to_string(i + 1) + " has no name");
      if (auto why = name == "topic" ? std::string() : field_name_problem(name); !why.empty()) {
        throw std::invalid_argument("the CSV header: " + why);
      }
      if (std::find(columns_.begin(), columns_.end(), name) != columns_.end()) {
        throw std::invalid_argument("the CSV header names column '" + name + "' twice");
      }
      if (name == "topic") topic_column_ = i;
      columns_.push_back(std::move(name));
    }
    if (topic_column_ == kNone) {
      throw std::invalid_argument("the CSV header has no 'topic' column (columns: " + joined(columns_) + ")");
    }
  }

  std::optional<TopicLine> next() override {
    std::vector<std::string> record;
    std::string problem;
    std::uint64_t line = 0;
    while (read_record(record, problem, line)) {
      if (problem.empty() && record.size() == 1 && record[0].empty()) continue;  // a blank line
      if (auto t = accept(line, to_row(record, problem), required_)) return t;
    }
    return std::nullopt;
  }

  std::uint64_t lines() const override { return line_; }

  std::vector<std::string> field_names() override {
    std::vector<std::string> names;
    for (const auto& c : columns_) {
      if (c != "topic") names.push_back(c);
    }
    return names;
  }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  static std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
    return out;
  }

  Result<TopicRow, std::string> to_row(std::vector<std::string>& record, const std::string& problem) const {
    if (!problem.empty()) return Err{problem};
    if (record.size() != columns_.size()) {
      return Err{"has " + std::to_string(record.size()) + " fields, the header " +
                 std::to_string(columns_.size())};
    }
    auto topic = row_topic(record[topic_column_]);
    if (!topic) return Err{std::move(topic.error())};
    TopicRow row{std::move(topic).value(), {}};
    for (std::size_t i = 0; i < record.size(); ++i) {
      if (i == topic_column_) continue;
      if (auto why = field_value_problem(columns_[i], record[i]); !why.empty()) return Err{std::move(why)};
      row.fields.push_back({columns_[i], std::move(record[i])});
    }
    return row;
  }

  // One record into `fields`; false at the end of the input. `problem` says what is wrong with it (a
  // quote left open, text after a closing quote, too long); `line` is the line it starts on.
  bool read_record(std::vector<std::string>& fields, std::string& problem, std::uint64_t& line) {
    fields.assign(1, std::string());
    problem.clear();
    line = line_ + 1;
    std::size_t bytes = 0;
    enum class State {
      field_start,
      unquoted,
      quoted,
      quote_in_quoted,
      after_quoted
    } state = State::field_start;
    int c = in_.get();
    if (c == EOF) return false;
    for (; c != EOF; c = in_.get()) {
      const char ch = static_cast<char>(c);
      if (ch == '\n') ++line_;
      if (++bytes > kMaxRowBytes && problem.empty()) problem = too_long_reason();
      switch (state) {
        case State::field_start:
        case State::unquoted:
        case State::after_quoted:
          if (ch == '\n') return end_record(fields, state == State::unquoted);
          if (ch == ',') {
            if (problem.empty()) fields.emplace_back();  // a refused row holds nothing more: bounded memory
            state = State::field_start;
          } else if (ch == '"' && state == State::field_start) {
            state = State::quoted;
          } else if (state == State::after_quoted && ch != '\r') {
            if (problem.empty())
              problem = "has text after a closing quote (line " + std::to_string(line_ + 1) + ")";
          } else {
            append(fields, ch, problem);
            if (state == State::field_start) state = State::unquoted;
          }
          break;
        case State::quoted:
          if (ch == '"') {
            state = State::quote_in_quoted;
          } else {
            append(fields, ch, problem);
          }
          break;
        case State::quote_in_quoted:
          if (ch == '"') {  // "" inside quotes: one quote
            append(fields, ch, problem);
            state = State::quoted;
            break;
          }
          state = State::after_quoted;
          if (ch == '\n') return end_record(fields, false);
          if (ch == ',') {
            if (problem.empty()) fields.emplace_back();
            state = State::field_start;
          } else if (ch != '\r' && problem.empty()) {
            problem = "has text after a closing quote (line " + std::to_string(line_ + 1) + ")";
          }
          break;
      }
    }
    if (state == State::quoted && problem.empty()) problem = "has a quoted field that is never closed";
    return end_record(fields, state == State::unquoted);
  }

  // A CR before the line's end belongs to the line end (CRLF), not to an unquoted last field.
  static bool end_record(std::vector<std::string>& fields, bool unquoted) {
    if (unquoted && fields.back().ends_with('\r')) fields.back().pop_back();
    return true;
  }

  // Stops storing once the record is over the cap: its end is still found, its bytes are not kept.
  static void append(std::vector<std::string>& fields, char ch, const std::string& problem) {
    if (problem.empty()) fields.back() += ch;
  }

  ByteSource in_;
  std::vector<std::string> required_;
  std::vector<std::string> columns_;
  std::size_t topic_column_ = kNone;
  std::uint64_t line_ = 0;  // line breaks read so far
};

}  // namespace

std::string_view to_string(InputFormat f) {
  switch (f) {
    case InputFormat::text:
      return "text";
    case InputFormat::jsonl:
      return "jsonl";
    case InputFormat::csv:
      return "csv";
  }
  return "text";
}

std::optional<InputFormat> input_format_from_string(std::string_view s) {
  for (InputFormat f : {InputFormat::text, InputFormat::jsonl, InputFormat::csv}) {
    if (s == to_string(f)) return f;
  }
  return std::nullopt;
}

InputFormat input_format_of_path(std::string_view path) {
  const std::size_t dot = path.rfind('.');
  const std::size_t slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return InputFormat::text;
  std::string ext(path.substr(dot + 1));
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == "jsonl" || ext == "ndjson") return InputFormat::jsonl;
  if (ext == "csv") return InputFormat::csv;
  return InputFormat::text;
}

Result<TopicRow, std::string> parse_jsonl_row(std::string_view line) {
  RowHandler handler;
  rapidjson::Reader reader;
  rapidjson::MemoryStream ms(line.data(), line.size());
  constexpr unsigned kFlags = rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseValidateEncodingFlag |
                              rapidjson::kParseIterativeFlag;
  const rapidjson::ParseResult ok = reader.Parse<kFlags>(ms, handler);
  if (!handler.problem.empty()) return Err{std::move(handler.problem)};
  if (!ok) {
    if (ok.Code() == rapidjson::kParseErrorStringInvalidEncoding) return Err{std::string("not valid UTF-8")};
    return Err{"not valid JSON (offset " + std::to_string(ok.Offset()) + ")"};
  }
  if (!handler.seen_object) return Err{std::string("not a JSON object")};
  if (!handler.topic) return Err{std::string("has no 'topic' field")};
  auto topic = row_topic(*handler.topic);
  if (!topic) return Err{std::move(topic.error())};
  for (const auto& f : handler.fields) {
    if (auto why = field_name_problem(f.name); !why.empty()) return Err{std::move(why)};
    if (auto why = field_value_problem(f.name, f.value); !why.empty()) return Err{std::move(why)};
  }
  return TopicRow{std::move(topic).value(), std::move(handler.fields)};
}

std::unique_ptr<RowReader> RowReader::make(std::FILE* in, const InputSpec& spec) {
  switch (spec.format) {
    case InputFormat::jsonl:
      return std::make_unique<JsonlReader>(in, spec.required);
    case InputFormat::csv:
      return std::make_unique<CsvReader>(in, spec.required);
    case InputFormat::text:
      break;
  }
  return std::make_unique<TextReader>(in);
}

std::optional<TopicLine> RowReader::accept(std::uint64_t line, Result<TopicRow, std::string> row,
                                           const std::vector<std::string>& required) {
  if (!row) {
    skip(line, std::move(row.error()));
    return std::nullopt;
  }
  for (const auto& name : required) {
    if (find_field(row->fields, name) == nullptr) {
      skip(line, "has no field '" + name + "' (the prompts use {" + name + "})");
      return std::nullopt;
    }
  }
  return TopicLine{next_id_++, std::move(row->topic), std::move(row->fields)};
}

void RowReader::skip(std::uint64_t line, std::string reason) {
  if (invalid_count_++ < kKeptInvalidLines) invalid_.push_back({line, std::move(reason)});
}

}  // namespace cbm
