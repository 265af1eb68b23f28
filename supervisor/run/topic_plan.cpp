#include "topic_plan.hpp"

#include <stdexcept>
#include <utility>

#include "duplicate_topics.hpp"
#include "row_fields.hpp"

namespace cbm {

void log_invalid_lines(Logger& log, const std::vector<InvalidLine>& first, std::uint64_t count) {
  for (const auto& bad : first) {
    log.warn("topics line " + std::to_string(bad.line_number) + " skipped: " + bad.reason);
  }
  if (count > first.size()) {
    log.warn(std::to_string(count - first.size()) + " more invalid topics lines skipped (" + std::to_string(count) +
             " in all; only the first " + std::to_string(kKeptInvalidLines) + " are logged one by one)");
  }
}

namespace {

// A usage error about the topics file, named as the flag.
[[noreturn]] void usage_error(const std::string& path, const std::string& what) {
  std::string m = "--topics-file '";
  m += path;
  m += "': ";
  m += what;
  throw std::invalid_argument(m);
}

// Opens the topics file; a directory is a usage error naming the flag.
std::unique_ptr<InputStream> open_input(const std::string& path, const StopCheck& stop) {
  try {
    return std::make_unique<InputStream>(path, stop);
  } catch (const std::invalid_argument& e) {
    std::string m = "--topics-file: ";
    m += e.what();
    throw std::invalid_argument(m);
  }
}

}  // namespace

TopicPlan::TopicPlan(const RunConfig& cfg, StopCheck stop)
    : cfg_(cfg), stop_(std::move(stop)), spec_{cfg.input_format, cfg.pipeline.prompts.field_names()} {
  if (cfg.topics_file.empty()) {
    list_ = std::make_shared<const std::vector<TopicRow>>(cfg.topics);
    if (!cfg.topics.empty()) {
      for (const auto& f : cfg.topics.front().fields) fields_.push_back(f.name);
    }
    return;
  }
  auto stream = open_input(cfg.topics_file, stop_);
  if (!stream->regular() || cfg.iterations != 1) {
    reload(std::move(stream), nullptr);  // the same open: a FIFO's data is the reader's that has it open
    return;
  }
  // Streamed: the counting pass (the round rereads the file from its start).
  std::unique_ptr<RowReader> reader;
  try {
    reader = RowReader::make(stream->file(), spec_);
    fields_ = reader->field_names();
  } catch (const std::invalid_argument& e) {
    usage_error(cfg.topics_file, e.what());
  }
  std::vector<std::uint64_t> hashes;
  while (auto t = reader->next()) hashes.push_back(task_hash(t->topic, t->fields));
  if (hashes.empty() && !stream->stopped()) {
    no_topics_ = no_topics_message(cfg.topics_file, reader->lines(), reader->invalid_count());
  }
  stream_survey_ = survey_of(std::move(hashes));
  stream_survey_.complete = !stream->stopped();
  stream_ = std::move(stream);
}

TopicPlan::~TopicPlan() = default;

void TopicPlan::require_topics() const {
  if (no_topics_) throw std::invalid_argument(*no_topics_);
}

std::uint64_t TopicPlan::log_held_invalid_lines(Logger& log) {
  log_invalid_lines(log, held_invalid_, held_invalid_count_);
  held_invalid_.clear();
  return std::exchange(held_invalid_count_, 0);
}

TopicPlan::Round TopicPlan::next_round() {
  Round round;
  if (stream_) {
    stream_->rewind();
    round.source = topics_from_stream(stream_->file(), spec_);
    round.survey = std::move(stream_survey_);
    return round;
  }
  round.survey = survey_round(*topics_from_rows(list_));
  round.source = topics_from_rows(list_);
  return round;
}

void TopicPlan::on_reload_request(Logger& log) {
  if (cfg_.topics_file.empty() || cfg_.iterations == 1) {
    log.info("SIGHUP: no topics file to reread");
    return;
  }
  reload(nullptr, &log);
}

// Reads the file (`stream`, or opened now when null) into the held list. At the start (`log` null) a
// problem is thrown; on SIGHUP it is logged and the current list kept. False when the list was not
// replaced.
bool TopicPlan::reload(std::unique_ptr<InputStream> stream, Logger* log) {
  const std::string& path = cfg_.topics_file;
  auto keep_current = [&](const std::string& why) {
    log->warn("cannot reread '" + path + "': " + why + "; keeping the current topics");
    return false;
  };
  try {
    if (!stream) stream = open_input(path, stop_);
  } catch (const std::exception& e) {  // gone, unreadable, a directory
    if (log == nullptr) throw;
    return keep_current(e.what());
  }
  HeldInput held;
  try {
    held = read_held_input(stream->file(), spec_);
  } catch (const std::invalid_argument& e) {  // a CSV header no longer usable, too many topics
    if (log == nullptr) usage_error(path, e.what());
    return keep_current(e.what());
  }
  const bool stopped = stream->stopped();
  stream.reset();
  if (log != nullptr) {
    log_invalid_lines(*log, held.invalid, held.invalid_count);
    if (stopped) {
      log->warn("stopped while rereading '" + path + "'; keeping the current topics");
      return false;
    }
    if (held.rows.empty()) {
      log->warn(no_topics_message("'" + path + "'", held.lines, held.invalid_count) + "; keeping the current topics");
      return false;
    }
    log->info("loaded " + std::to_string(held.rows.size()) + " topics from '" + path + "'");
  } else {
    if (held.rows.empty() && !stopped) no_topics_ = no_topics_message(path, held.lines, held.invalid_count);
    held_invalid_ = std::move(held.invalid);
    held_invalid_count_ = held.invalid_count;
    fields_ = std::move(held.fields);
  }
  list_ = std::make_shared<const std::vector<TopicRow>>(std::move(held.rows));
  return true;
}

}  // namespace cbm
