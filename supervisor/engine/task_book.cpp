#include "task_book.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

namespace cbm {

void TaskBook::begin(std::uint32_t round, TopicSource& source) {
  round_ = round;
  source_ = &source;
  source_done_ = false;
  planned_ = 0;
  next_unread_id_ = 0;
  tasks_.clear();
  ready_.clear();
  waiting_.clear();
}

std::size_t TaskBook::end() {
  source_ = nullptr;
  source_done_ = true;
  return planned_;
}

std::optional<TopicLine> TaskBook::read_next() {
  if (source_done_ || source_ == nullptr) return std::nullopt;
  try {
    auto next = source_->next();
    if (next) {
      ++planned_;
      next_unread_id_ = std::max(next_unread_id_, next->id + 1);
    }
    return next;
  } catch (...) {
    source_done_ = true;
    throw;
  }
}

void TaskBook::refill(std::size_t slots) {
  if (source_done_) return;
  const std::size_t window = slots + (source_->open() ? 0 : read_ahead_);
  while (!source_done_ && tasks_.size() < window) {
    const bool still_open = source_->open();  // asked first: topics added after next() still count
    auto next = read_next();
    if (!next) {
      source_done_ = !still_open;
      break;
    }
    if (ledger_.has(round_, next->id)) continue;  // finished before a --resume
    tasks_.emplace(next->id,
                   TaskProgress(Task{next->id, round_, std::move(next->topic), 0, std::move(next->fields)}));
    ready_.push_back(next->id);
  }
}

TaskBook::TaskId TaskBook::pop_ready() {
  const TaskId id = ready_.front();
  ready_.pop_front();
  return id;
}

void TaskBook::wait_to_retry(TaskId task) { waiting_.insert(task); }

bool TaskBook::retry_due(TaskId task) {
  if (waiting_.erase(task) == 0) return false;
  ready_.push_back(task);
  return true;
}

void TaskBook::finish(TaskId task, TaskResult result) {
  if (!ledger_.record(std::move(result))) {
    throw std::logic_error("task " + std::to_string(task) + " was given a second terminal record");
  }
  tasks_.erase(task);
}

void TaskBook::cancel_waiting(bool aborted, Clock::time_point now) {
  constexpr int kNoSlot = -1;
  for (TaskId id : std::exchange(ready_, {})) {
    const TaskProgress& t = tasks_.at(id);
    const CancelPoint point = t.attempts() > 0 ? CancelPoint::before_retry : CancelPoint::before_start;
    finish(id, t.cancel(point, aborted, kNoSlot, now));
  }
  for (TaskId id : std::exchange(waiting_, {})) {
    finish(id, tasks_.at(id).cancel(CancelPoint::before_retry, aborted, kNoSlot, now));
  }
  // Topics not read yet get their terminal record too: nothing is dropped. An input that can be read
  // again gets one record for all of them (however long it is); an open source (the service's queue)
  // is read out as it is now, and what it takes later is its owner's to cancel.
  if (!source_done_ && source_ != nullptr && source_->unread_as_range()) {
    UnreadTopics unread{round_, next_unread_id_, source_->known_total()};
    if (!unread.end_id || *unread.end_id > unread.first_id) ledger_.record_unread(unread);
    source_done_ = true;
    return;
  }
  while (auto next = read_next()) {
    if (ledger_.has(round_, next->id)) continue;
    ledger_.record(TaskProgress(Task{next->id, round_, std::move(next->topic), 0, std::move(next->fields)})
                       .cancel(CancelPoint::before_start, aborted, kNoSlot, now));
  }
  source_done_ = true;
}

}  // namespace cbm
