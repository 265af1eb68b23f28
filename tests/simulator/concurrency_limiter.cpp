#include "concurrency_limiter.h"

#include <utility>

namespace simulator {

ConcurrencyLimiter::Slot::Slot(Slot&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), key_(std::move(other.key_)) {}

ConcurrencyLimiter::Slot& ConcurrencyLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    key_ = std::move(other.key_);
  }
  return *this;
}

ConcurrencyLimiter::Slot::~Slot() {
  release();
}

void ConcurrencyLimiter::Slot::release() {
  if (owner_ == nullptr) return;
  std::lock_guard lock(owner_->mutex_);
  if (const auto it = owner_->in_flight_.find(key_); it != owner_->in_flight_.end() && --it->second == 0) {
    owner_->in_flight_.erase(it);
  }
  owner_ = nullptr;
}

std::optional<ConcurrencyLimiter::Slot> ConcurrencyLimiter::try_acquire(std::string_view key) {
  if (limit_ == 0) return Slot{};
  std::string owned_key(key);
  std::lock_guard lock(mutex_);
  auto& count = in_flight_[owned_key];
  if (count >= limit_) return std::nullopt;
  ++count;
  return Slot(this, std::move(owned_key));
}

}  // namespace simulator
