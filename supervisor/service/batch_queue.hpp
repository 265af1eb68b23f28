// BatchQueue: the HTTP service's requests as one open topic source, and the observer that brings
// their results back.
//
// Each accepted POST /analyze is a batch: its topics and its concurrency N. The service's one endless
// round reads topics from here: in turns across the batches, never more than N of a batch's topics
// out at once (handed to the executor and not finished), so a request's N caps its share of the shared
// pool and the server's --concurrency caps the pool. Task ids are global and increasing (unique within
// the round, as the ledger wants); each maps to (batch, index in the batch).
//
// The ledger reports every terminal record through task_finished(), one call at a time and outside its
// lock (record_outbox.hpp): the record is only moved into its batch. The batch's last record hands all
// of them to the batch's `done` callback and the batch leaves the queue, its memory with it. A topic
// repeated within a request is analysed once per occurrence (the service keeps no results to copy
// from). Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "run_control.hpp"
#include "run_observer.hpp"
#include "topic_source.hpp"

namespace cbm {

class BatchQueue final : public TopicSource, public RunObserver {
 public:
  // A batch's records, in the order of its topics, each with id = its index in the request.
  using Done = std::function<void(std::vector<TaskResult> results)>;

  // `control` (which must outlive the queue) is notified when topics arrive or the queue closes.
  explicit BatchQueue(RunControl& control);

  enum class Admission { accepted, closed, full };
  struct Submitted {
    Admission admission = Admission::accepted;
    std::uint64_t batch = 0;  // for abandon(), when accepted
  };
  // Queues a request's topics (at least one), at most `concurrency` of them out at once; nothing is
  // queued once the queue is closed, or when the topics waiting (of every batch, these included) would
  // pass `max_queued`. `done` is called once, as the ledger tells its observers of the batch's last
  // record: it may read the ledger, not record (and should hand the results on).
  Submitted submit(std::vector<std::string> topics, std::size_t concurrency, std::size_t max_queued, Done done);
  // The batch's client is gone: its topics not yet handed out are dropped (never sent); `done` is then
  // called with the records of those that were, once they finish (at once when none is out). Returns
  // how many were dropped.
  std::size_t abandon(std::uint64_t batch);
  // No more batches: the round ends once the queued ones have finished.
  void close();
  bool accepting() const;

  struct Gauges {
    std::size_t requests = 0;   // accepted and not yet done
    std::size_t in_flight = 0;  // topics handed to the executor, not finished
    std::size_t queued = 0;     // topics waiting for their turn
  };
  Gauges gauges() const;

  // The next topic of the first batch in turn with room under its concurrency.
  std::optional<TopicLine> next() override;
  // More may come: the queue takes batches, or topics wait for room under their batch's concurrency.
  bool open() const override;
  void task_finished(const TaskResult& result) override;

 private:
  struct Batch {
    std::uint64_t id = 0;
    std::vector<std::string> topics;  // each moved out when handed out; cut to `next` when abandoned
    std::size_t concurrency = 1;
    Done done;
    std::size_t next = 0;  // the next topic to hand out
    std::size_t out = 0;   // handed out, not finished
    std::size_t finished = 0;
    std::vector<TaskResult> results;
  };
  struct Slot {
    std::shared_ptr<Batch> batch;
    std::size_t index = 0;
  };

  RunControl& control_;
  mutable std::mutex mu_;
  bool open_ = true;
  std::uint64_t next_id_ = 0;
  std::uint64_t next_batch_ = 0;
  std::deque<std::shared_ptr<Batch>> waiting_;  // batches with topics not handed out yet, in turn order
  std::unordered_map<std::uint64_t, std::weak_ptr<Batch>> batches_;  // accepted and not done
  std::unordered_map<std::uint64_t, Slot> out_;  // task id -> its batch and index
  std::size_t requests_ = 0;
  std::size_t queued_ = 0;
};

}  // namespace cbm
