#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "faults.h"

namespace simulator {

// What the simulator has seen, served by GET /stats. Thread-safe: counters are relaxed atomics so the hot
// path never waits; only the keyed maps (error codes, topics) take a mutex.
class Stats {
 public:
  // Held while a chat request is admitted (latency wait included); feeds in_flight and peak_in_flight.
  class InFlight {
   public:
    InFlight(InFlight&& other) noexcept : stats_(std::exchange(other.stats_, nullptr)) {}
    InFlight& operator=(InFlight&&) = delete;
    ~InFlight();

   private:
    friend class Stats;
    explicit InFlight(Stats* stats) : stats_(stats) {}
    Stats* stats_;
  };

  // A request to the platform's API as it reached the wire, for tests that prove a setting is sent.
  struct RecordedRequest {
    std::string path;
    std::string user_agent;
    std::string accept_language;
    std::string body;
  };

  void count_connection() { connections_accepted_.fetch_add(1, std::memory_order_relaxed); }
  void count_web_search_request() { web_search_requests_.fetch_add(1, std::memory_order_relaxed); }
  // Keeps the last kMaxRecorded requests (chat and web search), oldest first.
  void record_request(RecordedRequest request);
  // A chat request arrived (read whole): counted, and its arrival time kept (the first kMaxArrivals).
  void count_chat_request();
  void count_stream_request() { stream_requests_.fetch_add(1, std::memory_order_relaxed); }
  void count_status(unsigned status);
  void count_fault(Fault fault);
  void count_error_code(std::string_view code);
  // A chat request's topic: counted, and its arrival's wall-clock time kept (the first kMaxArrivals).
  void count_topic(std::string_view topic);
  // A usage-cap answer named this reset time.
  void note_quota_reset(std::chrono::system_clock::time_point reset);
  InFlight enter();

  // {"requests_total":n,"by_status":{"200":n},"by_fault":{"hang":n},"by_code":{"1302":n},
  //  "by_topic":{"<topic>":n},"connections_accepted":n,"in_flight":n,"peak_in_flight":n,"stream_requests":n,
  //  "arrivals_ms":[ms since start or reset, in arrival order],"web_search_requests":n,
  //  "recent_requests":[{"path","user_agent","accept_language","body"}, oldest first],
  //  "topic_arrivals_unix_ms":{"<topic>":[Unix ms, in arrival order]},
  //  "quota_resets_unix_ms":[the reset times usage-cap answers named, Unix ms]}
  std::string to_json() const;

  // Zeroes every counter. in_flight is a gauge of live requests, so it is kept, and the peak restarts from
  // it.
  void reset();

 private:
  using Counter = std::atomic<std::uint64_t>;
  static constexpr std::size_t kStatusSlots = 600;
  static constexpr std::size_t kMaxArrivals = 100000;  // enough for any rate test; bounded for soak runs
  static constexpr std::size_t kMaxRecorded = 256;

  // Heterogeneous lookup: counting a topic hashes the string_view without building a std::string.
  struct TopicHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };

  Counter requests_total_{0};
  Counter connections_accepted_{0};
  Counter stream_requests_{0};
  Counter web_search_requests_{0};
  Counter in_flight_{0};
  Counter peak_in_flight_{0};
  std::array<Counter, kStatusSlots> by_status_{};
  std::array<Counter, kFaultCount> by_fault_{};

  mutable std::mutex maps_mutex_;
  std::map<std::string, std::uint64_t, std::less<>> by_code_;
  std::unordered_map<std::string, std::uint64_t, TopicHash, std::equal_to<>> by_topic_;
  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> arrivals_ms_;
  std::deque<RecordedRequest> recorded_;
  std::map<std::string, std::vector<std::int64_t>, std::less<>> topic_arrivals_unix_ms_;
  std::size_t topic_arrivals_ = 0;
  std::vector<std::int64_t> quota_resets_unix_ms_;
};

}  // namespace simulator
