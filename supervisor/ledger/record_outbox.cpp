#include "record_outbox.hpp"

#include <exception>

namespace cbm {

void RecordOutbox::post_record(const TaskResult& record) {
  if (observer_ == nullptr) return;
  std::lock_guard lock(queue_mu_);
  queue_.emplace_back(record);
}

void RecordOutbox::post_round_end(std::uint32_t round) {
  if (observer_ == nullptr) return;
  std::lock_guard lock(queue_mu_);
  queue_.emplace_back(RoundEnd{round});
}

std::optional<RecordOutbox::News> RecordOutbox::take() {
  std::lock_guard lock(queue_mu_);
  if (queue_.empty()) return std::nullopt;
  News next = std::move(queue_.front());
  queue_.pop_front();
  return next;
}

std::optional<std::string> RecordOutbox::deliver() {
  if (observer_ == nullptr) return std::nullopt;
  std::lock_guard delivering(delivery_mu_);
  std::optional<std::string> failure;
  while (auto news = take()) {
    try {
      if (const auto* record = std::get_if<TaskResult>(&*news)) {
        observer_->task_finished(*record);
      } else {
        observer_->round_finished(std::get<RoundEnd>(*news).round);
      }
    } catch (const std::exception& e) {
      if (!failure) failure = e.what();
    }
  }
  return failure;
}

}  // namespace cbm
