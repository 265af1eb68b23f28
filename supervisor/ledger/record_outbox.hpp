// RecordOutbox: the ledger's news (terminal records, finished rounds) on its way to the run's observer,
// delivered outside the ledger's lock, so an observer may call back into the ledger (totals(),
// abort_reason(), mark_aborted()...) without deadlock.
//
// Who calls what: the ledger post()s under its lock, in the order it journals the records; then, its
// lock released, it calls deliver(). What holds:
//   - each piece of news reaches the observer exactly once, in the order posted: a record after it was
//     journalled, a round's end after the round's records;
//   - observer calls never overlap: one thread delivers at a time, and delivers what the others posted;
//   - when deliver() returns, the news posted before it was called has been delivered (so when the
//     ledger's record() returns, the observer has heard of the record).
// What no longer holds (it did while the ledger called under its lock): that the thread which recorded
// is the one that calls the observer (in threading mode another worker thread may deliver its record),
// and that the ledger holds nothing the observer has not heard of yet (an observer that reads totals()
// may count records it will hear of next).
//
// An observer must not record from its calls: the delivery would wait for itself.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "run_observer.hpp"
#include "task.hpp"

namespace cbm {

class RecordOutbox {
 public:
  // `observer` (which must outlive the outbox) hears of everything posted; set it before the first post.
  // With none, posting costs nothing.
  void observe(RunObserver& observer) { observer_ = &observer; }

  void post_record(const TaskResult& record);
  void post_round_end(std::uint32_t round);

  // Delivers what is posted, by any thread, until nothing is left. An observer that throws does not
  // stop the delivery: the first exception's message is returned (the ledger aborts the run on it).
  std::optional<std::string> deliver();

 private:
  struct RoundEnd {
    std::uint32_t round = 0;
  };
  using News = std::variant<TaskResult, RoundEnd>;

  std::optional<News> take();

  RunObserver* observer_ = nullptr;
  std::mutex delivery_mu_;  // held while the observer is called: calls never overlap
  std::mutex queue_mu_;     // taken under the ledger's lock: never held while calling out
  std::deque<News> queue_;
};

}  // namespace cbm
