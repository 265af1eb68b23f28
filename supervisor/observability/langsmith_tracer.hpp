// LangSmithTracer: one LangSmith trace per task attempt, built from what the executor reports.
//
// attempt_started posts the trace's root (run_type chain, inputs {topic}, no end_time: open);
// attempt_ended posts one llm child per model call of the attempt (messages sent, answer — the search
// step's with the sources it found —, model, provider, the model settings as ls_temperature and
// ls_max_tokens, token usage; the failing call's error) and patches the root with its end_time and
// either outputs {analysis} or the attempt's error. An attempt whose worker crashed, timed out or was
// stopped is ended by the executor with that error, so its root is closed too.
//
// As LangSmith's SDK does: each trace is sent or not as a whole, drawn when its root starts with the
// settings' sampling rate; hidden inputs, outputs or metadata are sent as {}.
//
// Thread-safe and cheap on the caller's thread (records are built and queued; LangSmithSender does the
// I/O on its own thread), so a slow or dead LangSmith never slows the run.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <tuple>

#include "langsmith_sender.hpp"
#include "run_observer.hpp"

namespace cbm {

// The model settings every llm run's metadata names; nullopt: not sent.
struct TracedModelSettings {
  std::optional<double> temperature;
  std::optional<int> max_tokens;
};

// A uniform draw in [0,1), for the sampling decision.
using UniformDraw = std::function<double()>;
UniformDraw random_uniform_draw();

class LangSmithTracer final : public RunObserver {
 public:
  LangSmithTracer(LangSmithSettings settings, TracedModelSettings model, Logger& log, SenderLimits limits = {},
                  UniformDraw draw = random_uniform_draw());

  void attempt_started(const Task& task, int worker) override;
  void attempt_ended(const Task& task, const AttemptOutcome& outcome, int worker) override;

  // Delivers what is queued within `grace`, stops, and logs one summary line (sent, dropped and why).
  // Idempotent.
  void close(std::chrono::milliseconds grace);
  // What became of the run records so far.
  SenderTotals totals() { return sender_.totals(); }

 private:
  using AttemptKey = std::tuple<std::uint32_t, std::uint64_t, int>;  // round, task id, attempt

  LangSmithRun llm_run(const LangSmithRun& root, const StepRecord& step, const AttemptOutcome& outcome,
                       bool failed) const;
  std::string hidden_or(bool hide, std::string json) const { return hide ? std::string("{}") : std::move(json); }

  Logger& log_;
  const LangSmithSettings settings_;
  const TracedModelSettings model_;
  UniformDraw draw_;  // under mu_
  std::mutex mu_;
  std::map<AttemptKey, LangSmithRun> open_;  // roots of attempts in progress (ids and times only)
  bool closed_ = false;
  LangSmithSender sender_;
};

}  // namespace cbm
