#include "topic_source.hpp"

#include <stdexcept>
#include <utility>

namespace cbm {
namespace {

class ListSource final : public TopicSource {
 public:
  explicit ListSource(std::shared_ptr<const std::vector<std::string>> topics) : topics_(std::move(topics)) {}
  std::optional<TopicLine> next() override {
    if (i_ >= topics_->size()) return std::nullopt;
    const std::uint64_t id = i_;
    return TopicLine{id, (*topics_)[i_++], {}};
  }
  bool unread_as_range() const override { return true; }
  std::optional<std::uint64_t> known_total() const override { return topics_->size(); }

 private:
  std::shared_ptr<const std::vector<std::string>> topics_;
  std::size_t i_ = 0;
};

class RowListSource final : public TopicSource {
 public:
  explicit RowListSource(std::shared_ptr<const std::vector<TopicRow>> rows) : rows_(std::move(rows)) {}
  std::optional<TopicLine> next() override {
    if (i_ >= rows_->size()) return std::nullopt;
    const TopicRow& row = (*rows_)[i_];
    return TopicLine{i_++, row.topic, row.fields};
  }
  bool unread_as_range() const override { return true; }
  std::optional<std::uint64_t> known_total() const override { return rows_->size(); }

 private:
  std::shared_ptr<const std::vector<TopicRow>> rows_;
  std::size_t i_ = 0;
};

class StreamSource final : public TopicSource {
 public:
  StreamSource(std::FILE* in, const InputSpec& spec) : reader_(RowReader::make(in, spec)) {}

  std::optional<TopicLine> next() override {
    if (at_end_) return std::nullopt;
    auto line = reader_->next();
    if (line) {
      handed_out_ = line->id + 1;
    } else {
      at_end_ = true;
    }
    return line;
  }
  std::vector<InvalidLine> take_invalid_lines() override { return reader_->take_invalid(); }
  std::uint64_t invalid_count() const override { return reader_->invalid_count(); }
  bool unread_as_range() const override { return true; }
  std::optional<std::uint64_t> known_total() const override {
    if (at_end_) return handed_out_;
    return std::nullopt;
  }

 private:
  std::unique_ptr<RowReader> reader_;
  std::uint64_t handed_out_ = 0;  // ids below this were handed out
  bool at_end_ = false;
};

std::size_t held_bytes(const TopicRow& row) {
  std::size_t n = sizeof(TopicRow) + row.topic.size();
  for (const auto& f : row.fields) n += sizeof(f) + f.name.size() + f.value.size();
  return n;
}

}  // namespace

std::unique_ptr<TopicSource> topics_from_list(std::shared_ptr<const std::vector<std::string>> topics) {
  return std::make_unique<ListSource>(std::move(topics));
}

std::unique_ptr<TopicSource> topics_from_rows(std::shared_ptr<const std::vector<TopicRow>> rows) {
  return std::make_unique<RowListSource>(std::move(rows));
}

std::unique_ptr<TopicSource> topics_from_stream(std::FILE* in, const InputSpec& spec) {
  return std::make_unique<StreamSource>(in, spec);
}

HeldInput read_held_input(std::FILE* in, const InputSpec& spec, std::size_t max_bytes) {
  HeldInput held;
  auto reader = RowReader::make(in, spec);
  held.fields = reader->field_names();
  std::size_t bytes = 0;
  while (auto t = reader->next()) {
    TopicRow row{std::move(t->topic), std::move(t->fields)};
    bytes += held_bytes(row);
    if (bytes > max_bytes) {
      throw std::invalid_argument(
          "the input is not a regular file, so its topics are held in memory, and they pass the " +
          std::to_string(max_bytes / (1024 * 1024)) + " MiB this allows (at line " + std::to_string(reader->lines()) +
          "): save them to a regular file and pass its path (a regular file is streamed, whatever its size)");
    }
    held.rows.push_back(std::move(row));
  }
  held.invalid = reader->take_invalid();
  held.invalid_count = reader->invalid_count();
  held.lines = reader->lines();
  return held;
}

std::vector<std::string> read_topic_lines(std::FILE* in, std::vector<InvalidLine>& invalid) {
  HeldInput held = read_held_input(in, InputSpec{});
  invalid = std::move(held.invalid);
  std::vector<std::string> out;
  for (auto& row : held.rows) out.push_back(std::move(row.topic));
  return out;
}

std::string no_topics_message(const std::string& name, std::uint64_t lines, std::uint64_t invalid) {
  std::string m = "no topics in ";
  m += name;
  m += ": ";
  m += std::to_string(lines);
  m += " lines, ";
  m += std::to_string(invalid);
  m += " invalid";
  return m;
}

}  // namespace cbm
