#include "stats.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace simulator {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void key(JsonWriter& writer, std::string_view name) {
  writer.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}

void counter(JsonWriter& writer, std::string_view name, const std::atomic<std::uint64_t>& value) {
  key(writer, name);
  writer.Uint64(value.load(std::memory_order_relaxed));
}

}  // namespace

Stats::InFlight::~InFlight() {
  if (stats_ != nullptr) stats_->in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

Stats::InFlight Stats::enter() {
  const std::uint64_t now = in_flight_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::uint64_t peak = peak_in_flight_.load(std::memory_order_relaxed);
  while (now > peak && !peak_in_flight_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return InFlight(this);
}

void Stats::count_chat_request() {
  requests_total_.fetch_add(1, std::memory_order_relaxed);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(maps_mutex_);
  if (arrivals_ms_.size() < kMaxArrivals) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - epoch_).count();
    arrivals_ms_.push_back(static_cast<std::uint64_t>(ms));
  }
}

void Stats::record_request(RecordedRequest request) {
  std::lock_guard lock(maps_mutex_);
  if (recorded_.size() == kMaxRecorded) recorded_.pop_front();
  recorded_.push_back(std::move(request));
}

void Stats::count_status(unsigned status) {
  if (status < kStatusSlots) by_status_[status].fetch_add(1, std::memory_order_relaxed);
}

void Stats::count_fault(Fault fault) {
  by_fault_[static_cast<std::size_t>(fault)].fetch_add(1, std::memory_order_relaxed);
}

void Stats::count_error_code(std::string_view code) {
  std::lock_guard lock(maps_mutex_);
  if (const auto it = by_code_.find(code); it != by_code_.end()) {
    ++it->second;
  } else {
    by_code_.emplace(code, 1);
  }
}

namespace {
std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
}  // namespace

void Stats::note_quota_reset(std::chrono::system_clock::time_point reset) {
  std::lock_guard lock(maps_mutex_);
  quota_resets_unix_ms_.push_back(unix_ms(reset));
}

void Stats::count_topic(std::string_view topic) {
  const std::int64_t now = unix_ms(std::chrono::system_clock::now());
  std::lock_guard lock(maps_mutex_);
  if (topic_arrivals_ < kMaxArrivals) {
    ++topic_arrivals_;
    auto it = topic_arrivals_unix_ms_.find(topic);
    if (it == topic_arrivals_unix_ms_.end()) it = topic_arrivals_unix_ms_.emplace(std::string(topic), std::vector<std::int64_t>{}).first;
    it->second.push_back(now);
  }
  if (const auto it = by_topic_.find(topic); it != by_topic_.end()) {
    ++it->second;
  } else {
    by_topic_.emplace(topic, 1);
  }
}

std::string Stats::to_json() const {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  counter(writer, "requests_total", requests_total_);

  key(writer, "by_status");
  writer.StartObject();
  for (std::size_t status = 0; status < by_status_.size(); ++status) {
    if (const auto n = by_status_[status].load(std::memory_order_relaxed); n != 0) {
      key(writer, std::to_string(status));
      writer.Uint64(n);
    }
  }
  writer.EndObject();

  key(writer, "by_fault");
  writer.StartObject();
  for (std::size_t fault = 0; fault < by_fault_.size(); ++fault) {
    if (const auto n = by_fault_[fault].load(std::memory_order_relaxed); n != 0) {
      key(writer, fault_name(static_cast<Fault>(fault)));
      writer.Uint64(n);
    }
  }
  writer.EndObject();

  {
    std::lock_guard lock(maps_mutex_);
    key(writer, "by_code");
    writer.StartObject();
    for (const auto& [code, n] : by_code_) {
      key(writer, code);
      writer.Uint64(n);
    }
    writer.EndObject();
    key(writer, "by_topic");
    writer.StartObject();
    for (const auto& [topic, n] : by_topic_) {
      key(writer, topic);
      writer.Uint64(n);
    }
    writer.EndObject();
    key(writer, "arrivals_ms");
    writer.StartArray();
    for (const auto ms : arrivals_ms_) writer.Uint64(ms);
    writer.EndArray();
    key(writer, "recent_requests");
    writer.StartArray();
    for (const auto& r : recorded_) {
      writer.StartObject();
      for (const auto& [name, value] :
           {std::pair{"path", &r.path}, std::pair{"user_agent", &r.user_agent},
            std::pair{"accept_language", &r.accept_language}, std::pair{"body", &r.body}}) {
        key(writer, name);
        writer.String(value->data(), static_cast<rapidjson::SizeType>(value->size()));
      }
      writer.EndObject();
    }
    writer.EndArray();
    key(writer, "topic_arrivals_unix_ms");
    writer.StartObject();
    for (const auto& [topic, times] : topic_arrivals_unix_ms_) {
      key(writer, topic);
      writer.StartArray();
      for (const auto ms : times) writer.Int64(ms);
      writer.EndArray();
    }
    writer.EndObject();
    key(writer, "quota_resets_unix_ms");
    writer.StartArray();
    for (const auto ms : quota_resets_unix_ms_) writer.Int64(ms);
    writer.EndArray();
  }

  counter(writer, "connections_accepted", connections_accepted_);
  counter(writer, "in_flight", in_flight_);
  counter(writer, "peak_in_flight", peak_in_flight_);
  counter(writer, "stream_requests", stream_requests_);
  counter(writer, "web_search_requests", web_search_requests_);
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

void Stats::reset() {
  requests_total_.store(0, std::memory_order_relaxed);
  connections_accepted_.store(0, std::memory_order_relaxed);
  stream_requests_.store(0, std::memory_order_relaxed);
  web_search_requests_.store(0, std::memory_order_relaxed);
  peak_in_flight_.store(in_flight_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  for (auto& n : by_status_) n.store(0, std::memory_order_relaxed);
  for (auto& n : by_fault_) n.store(0, std::memory_order_relaxed);
  std::lock_guard lock(maps_mutex_);
  by_code_.clear();
  by_topic_.clear();
  arrivals_ms_.clear();
  recorded_.clear();
  topic_arrivals_unix_ms_.clear();
  topic_arrivals_ = 0;
  quota_resets_unix_ms_.clear();
  epoch_ = std::chrono::steady_clock::now();
}

}  // namespace simulator
