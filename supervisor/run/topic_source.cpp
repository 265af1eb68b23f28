#include "topic_source.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace cbm {
namespace {

// Reads one line of any length with getline(3), so a huge line costs one buffer, not a crash.
class LineReader {
 public:
  explicit LineReader(std::FILE* f) : f_(f) {}
  ~LineReader() { std::free(buf_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  std::optional<std::string_view> next() {
    const ssize_t n = ::getline(&buf_, &cap_, f_);
    if (n < 0) return std::nullopt;
    std::string_view line(buf_, static_cast<std::size_t>(n));
    if (line.ends_with('\n')) line.remove_suffix(1);
    return line;
  }

 private:
  std::FILE* f_;
  char* buf_ = nullptr;
  std::size_t cap_ = 0;
};

// Applies the line rules to a stream of raw lines.
class LineFilter {
 public:
  std::optional<TopicLine> accept(std::string_view raw) {
    ++line_number_;
    const std::string_view line = trim_topic(raw);
    if (line.empty() || line.starts_with('#')) return std::nullopt;
    auto topic = checked_topic(line);
    if (!topic) {
      invalid_.push_back({line_number_, std::move(topic.error().what)});
      return std::nullopt;
    }
    return TopicLine{next_id_++, std::move(topic).value()};
  }
  std::vector<InvalidLine> take_invalid() { return std::exchange(invalid_, {}); }

 private:
  std::uint64_t line_number_ = 0;
  std::uint64_t next_id_ = 0;
  std::vector<InvalidLine> invalid_;
};

class ListSource final : public TopicSource {
 public:
  explicit ListSource(std::shared_ptr<const std::vector<std::string>> topics) : topics_(std::move(topics)) {}
  std::optional<TopicLine> next() override {
    if (i_ >= topics_->size()) return std::nullopt;
    const std::uint64_t id = i_;
    return TopicLine{id, (*topics_)[i_++]};
  }

 private:
  std::shared_ptr<const std::vector<std::string>> topics_;
  std::size_t i_ = 0;
};

class FileSource final : public TopicSource {
 public:
  explicit FileSource(const std::string& path) : f_(std::fopen(path.c_str(), "re")), reader_(f_) {
    if (f_ == nullptr) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
  }
  ~FileSource() override { std::fclose(f_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  std::optional<TopicLine> next() override {
    while (auto raw = reader_.next()) {
      if (auto t = filter_.accept(*raw)) return t;
    }
    return std::nullopt;
  }
  std::vector<InvalidLine> take_invalid_lines() override { return filter_.take_invalid(); }

 private:
  std::FILE* f_;
  LineReader reader_;
  LineFilter filter_;
};

}  // namespace

std::unique_ptr<TopicSource> topics_from_list(std::shared_ptr<const std::vector<std::string>> topics) {
  return std::make_unique<ListSource>(std::move(topics));
}

std::unique_ptr<TopicSource> topics_from_file(const std::string& path) { return std::make_unique<FileSource>(path); }

std::vector<std::string> read_topic_lines(std::FILE* in, std::vector<InvalidLine>& invalid) {
  std::vector<std::string> out;
  LineReader reader(in);
  LineFilter filter;
  while (auto raw = reader.next()) {
    if (auto t = filter.accept(*raw)) out.push_back(std::move(t->topic));
  }
  invalid = filter.take_invalid();
  return out;
}

}  // namespace cbm
