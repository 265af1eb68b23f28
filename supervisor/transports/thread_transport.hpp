// ThreadTransport (--mode threading): a thread per slot in this process, each with its own HTTP
// client (one easy handle, keep-alive), blocking in Pipeline::run for an attempt. The engine posts an
// attempt to a slot's mailbox; the thread runs it and posts the outcome back, waking the engine's
// loop through the run's control eventfd. A thread decides nothing: no retries, no waits, no records.
// cancel() raises the slot's abort flag, which its transfer polls (it ends within a second). What it
// cannot survive, by nature: a crash anywhere takes the whole process (use multiprocessing).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "run_config.hpp"
#include "run_control.hpp"
#include "transport.hpp"

namespace cbm {

class ThreadTransport final : public Transport {
 public:
  ThreadTransport(const RunConfig& config, RunControl& control);
  ~ThreadTransport() override;  // aborts what runs and joins every thread

  std::size_t slots() const override { return slots_.size(); }
  std::string_view slot_label() const override { return "t"; }
  void start(std::size_t slot, const Task& task, Clock::time_point deadline) override;
  void cancel(std::size_t slot, CancelCause cause) override;
  void wait(Clock::time_point until, AttemptSink& sink) override;

 private:
  struct Job {
    Task task;
    Clock::time_point deadline;
  };
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Job> job;  // guarded by mu
    bool closing = false;    // guarded by mu
    std::atomic<bool> abort{false};
    std::jthread thread;
  };

  void run(std::size_t slot);
  void stop_threads();  // aborts what runs, wakes every thread to end, joins them

  const RunConfig& config_;
  RunControl& control_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::mutex ended_mu_;
  EndedAttempts ended_;  // guarded by ended_mu_
  EndedAttempts delivering_;
};

}  // namespace cbm
