// LangSmithTracer: one LangSmith trace per task attempt, built from what the executor reports.
//
// attempt_started posts the trace's root (run_type chain, inputs {topic}, no end_time: open);
// attempt_ended posts one llm child per model call of the attempt (messages sent, answer, model,
// provider, token usage; the failing call's error) and patches the root with its end_time and either
// outputs {analysis} or the attempt's error. An attempt whose worker crashed, timed out or was stopped
// is ended by the executor with that error, so its root is closed too.
//
// Thread-safe and cheap on the caller's thread (records are built and queued; LangSmithSender does the
// I/O on its own thread), so a slow or dead LangSmith never slows the run.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "langsmith_sender.hpp"
#include "run_observer.hpp"

namespace cbm {

class LangSmithTracer final : public RunObserver {
 public:
  LangSmithTracer(LangSmithSettings settings, Logger& log, SenderLimits limits = {});

  void attempt_started(const Task& task, int worker) override;
  void attempt_ended(const Task& task, const AttemptOutcome& outcome, int worker) override;

  // Delivers what is queued within `grace`, stops, and logs one summary line (sent, dropped and why).
  // Idempotent.
  void close(std::chrono::milliseconds grace);

 private:
  using AttemptKey = std::tuple<std::uint32_t, std::uint64_t, int>;  // round, task id, attempt

  Logger& log_;
  const std::string project_;
  std::mutex mu_;
  std::map<AttemptKey, LangSmithRun> open_;  // roots of attempts in progress (ids and times only)
  bool closed_ = false;
  LangSmithSender sender_;
};

}  // namespace cbm
