#include "topic_source.hpp"

#include <cerrno>
#include <cstring>
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

std::FILE* open_input(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
  return f;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

class FileSource final : public TopicSource {
 public:
  FileSource(const std::string& path, const InputSpec& spec)
      : f_(open_input(path)), reader_(RowReader::make(f_.get(), spec)) {}

  std::optional<TopicLine> next() override {
    auto line = reader_->next();
    if (line) {
      handed_out_ = line->id + 1;
    } else {
      at_end_ = true;
    }
    return line;
  }
  std::vector<InvalidLine> take_invalid_lines() override { return reader_->take_invalid(); }
  bool unread_as_range() const override { return true; }
  std::optional<std::uint64_t> known_total() const override {
    if (at_end_) return handed_out_;
    return std::nullopt;
  }

 private:
  UniqueFile f_;
  std::unique_ptr<RowReader> reader_;
  std::uint64_t handed_out_ = 0;  // ids below this were handed out
  bool at_end_ = false;
};

}  // namespace

std::unique_ptr<TopicSource> topics_from_list(std::shared_ptr<const std::vector<std::string>> topics) {
  return std::make_unique<ListSource>(std::move(topics));
}

std::unique_ptr<TopicSource> topics_from_rows(std::shared_ptr<const std::vector<TopicRow>> rows) {
  return std::make_unique<RowListSource>(std::move(rows));
}

std::unique_ptr<TopicSource> topics_from_file(const std::string& path, const InputSpec& spec) {
  return std::make_unique<FileSource>(path, spec);
}

std::vector<std::string> input_field_names(const std::string& path, InputFormat format) {
  const UniqueFile f(open_input(path));
  return RowReader::make(f.get(), InputSpec{format, {}})->field_names();
}

std::vector<std::string> read_topic_lines(std::FILE* in, std::vector<InvalidLine>& invalid) {
  std::vector<std::string> fields;
  std::vector<std::string> out;
  for (auto& row : read_topic_rows(in, InputSpec{}, invalid, fields)) out.push_back(std::move(row.topic));
  return out;
}

std::vector<TopicRow> read_topic_rows(std::FILE* in, const InputSpec& spec, std::vector<InvalidLine>& invalid,
                                      std::vector<std::string>& fields) {
  std::vector<TopicRow> out;
  auto reader = RowReader::make(in, spec);
  fields = reader->field_names();
  while (auto t = reader->next()) out.push_back({std::move(t->topic), std::move(t->fields)});
  invalid = reader->take_invalid();
  return out;
}

}  // namespace cbm
