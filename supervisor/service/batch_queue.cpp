#include "batch_queue.hpp"

#include <algorithm>
#include <utility>

namespace cbm {

BatchQueue::BatchQueue(RunControl& control) : control_(control) {}

BatchQueue::Submitted BatchQueue::submit(std::vector<std::string> topics, std::size_t concurrency,
                                         std::size_t max_queued, Done done) {
  if (topics.empty()) {
    done({});
    return {};
  }
  auto batch = std::make_shared<Batch>();
  batch->concurrency = std::max<std::size_t>(concurrency, 1);
  batch->done = std::move(done);
  batch->results.resize(topics.size());
  const std::size_t n = topics.size();
  batch->topics = std::move(topics);
  Submitted out;
  {
    std::lock_guard lock(mu_);
    if (!open_) return {Admission::closed, 0};
    if (queued_ + n > max_queued) return {Admission::full, 0};
    batch->id = next_batch_++;
    out.batch = batch->id;
    batches_.emplace(batch->id, batch);
    waiting_.push_back(std::move(batch));
    ++requests_;
    queued_ += n;
  }
  control_.notify();
  return out;
}

std::size_t BatchQueue::abandon(std::uint64_t id) {
  Done done;
  std::vector<TaskResult> results;
  std::size_t dropped = 0;
  {
    std::lock_guard lock(mu_);
    const auto found = batches_.find(id);
    if (found == batches_.end()) return 0;
    const std::shared_ptr<Batch> batch = found->second.lock();
    if (!batch) return 0;
    dropped = batch->topics.size() - batch->next;
    queued_ -= dropped;
    batch->topics.resize(batch->next);
    batch->results.resize(batch->next);
    std::erase(waiting_, batch);
    if (batch->finished == batch->results.size()) {
      done = std::move(batch->done);
      results = std::move(batch->results);
      batches_.erase(found);
      --requests_;
    }
  }
  if (done) done(std::move(results));
  return dropped;
}

void BatchQueue::close() {
  {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  control_.notify();
}

bool BatchQueue::open() const {
  std::lock_guard lock(mu_);
  return open_ || queued_ > 0;
}

bool BatchQueue::accepting() const {
  std::lock_guard lock(mu_);
  return open_;
}

BatchQueue::Gauges BatchQueue::gauges() const {
  std::lock_guard lock(mu_);
  return {requests_, out_.size(), queued_};
}

std::optional<TopicLine> BatchQueue::next() {
  std::lock_guard lock(mu_);
  // The first batch in turn order with room under its concurrency; it then goes to the back.
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    Batch& b = **it;
    if (b.out >= b.concurrency) continue;
    const std::size_t index = b.next++;
    ++b.out;
    --queued_;
    const std::uint64_t id = next_id_++;
    TopicLine line{id, std::move(b.topics[index]), {}};
    std::shared_ptr<Batch> batch = std::move(*it);
    waiting_.erase(it);
    if (batch->next < batch->topics.size()) waiting_.push_back(batch);
    out_.emplace(id, Slot{std::move(batch), index});
    return line;
  }
  return std::nullopt;
}

void BatchQueue::task_finished(const TaskResult& result) {
  Done done;
  std::vector<TaskResult> results;
  bool room_made = false;
  {
    std::lock_guard lock(mu_);
    auto it = out_.find(result.id);
    if (it == out_.end()) return;
    const std::shared_ptr<Batch> batch = std::move(it->second.batch);
    const std::size_t index = it->second.index;
    out_.erase(it);
    TaskResult& r = batch->results[index];
    r = result;
    r.id = index;
    // What only tracing needs (prompts, raw output) is not kept for the answer.
    for (auto& step : r.steps) {
      step.messages.clear();
      step.output.clear();
    }
    --batch->out;
    ++batch->finished;
    room_made = batch->next < batch->topics.size();
    if (batch->finished == batch->results.size()) {
      done = std::move(batch->done);
      results = std::move(batch->results);
      batches_.erase(batch->id);
      --requests_;
    }
  }
  if (done) done(std::move(results));
  // An executor waiting for topics may take this batch's next one now.
  if (room_made) control_.notify();
}

}  // namespace cbm
