#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace simulator {

// Caps the chat requests in flight per API key, as the platform does with error 1302. Thread-safe.
class ConcurrencyLimiter {
 public:
  // Proof of admission; gives the request's place back when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();

   private:
    friend class ConcurrencyLimiter;
    Slot(ConcurrencyLimiter* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    void release();

    ConcurrencyLimiter* owner_ = nullptr;  // null when unlimited or moved from
    std::string key_;
  };

  explicit ConcurrencyLimiter(std::size_t limit) : limit_(limit) {}  // 0: unlimited

  // A slot for `key`, or nullopt when `key` already has `limit` requests in flight.
  std::optional<Slot> try_acquire(std::string_view key);

 private:
  const std::size_t limit_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> in_flight_;
};

}  // namespace simulator
