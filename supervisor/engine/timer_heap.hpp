// TimerHeap: the one structure for "wake me at T" in a loop (the engine's retry backoffs, --delay, the
// drain grace and rate-cap admissions; the worker pool's kill deadlines). A binary heap of (time,
// payload); a timer is not removed when it stops mattering: its payload carries what it was set for (a
// worker's generation, say) and the owner ignores a stale one when it fires. So it suits timers that
// mostly fire: one set per attempt and mostly outlived (a --timeout) would pile up, and lives elsewhere.
// Ties fire in the order they were set. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace cbm {

template <typename Payload>
class TimerHeap {
 public:
  using Clock = std::chrono::steady_clock;

  void set(Clock::time_point when, Payload payload) { heap_.push(Entry{when, next_seq_++, std::move(payload)}); }

  // When the earliest timer is due; nullopt when none is set.
  std::optional<Clock::time_point> next() const {
    if (heap_.empty()) return std::nullopt;
    return heap_.top().when;
  }

  // The earliest timer due at `now`, removed; nullopt when none is due.
  std::optional<Payload> pop_due(Clock::time_point now) {
    if (heap_.empty() || heap_.top().when > now) return std::nullopt;
    Payload p = heap_.top().payload;
    heap_.pop();
    return p;
  }

  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  void clear() { heap_ = {}; }

 private:
  struct Entry {
    Clock::time_point when;
    std::uint64_t seq;
    Payload payload;
    bool operator>(const Entry& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace cbm
