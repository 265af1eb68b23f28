#include "langsmith_tracer.hpp"

#include <random>

namespace cbm {
namespace {

constexpr const char* kProvider = "zhipuai";

template <typename F>
std::string json_object(F&& write_members) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  write_members(w);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

void write_messages(JsonWriter& w, const std::vector<Message>& messages) {
  w.Key("messages");
  w.StartArray();
  for (const auto& m : messages) {
    w.StartObject();
    write_key_string(w, "role", m.role);
    write_key_string(w, "content", m.content);
    w.EndObject();
  }
  w.EndArray();
}

// The identity of a run, which is all a patch needs besides its ending.
LangSmithRun patch_of(const LangSmithRun& run) {
  LangSmithRun p;
  p.id = run.id;
  p.trace_id = run.trace_id;
  p.parent_run_id = run.parent_run_id;
  p.dotted_order = run.dotted_order;
  p.start_time = run.start_time;
  return p;
}

void write_sources(JsonWriter& w, const std::vector<Source>& sources) {
  w.Key("sources");
  w.StartArray();
  for (const auto& s : sources) {
    w.StartObject();
    write_key_string(w, "title", s.title);
    write_key_string(w, "link", s.link);
    if (!s.media.empty()) write_key_string(w, "media", s.media);
    if (!s.publish_date.empty()) write_key_string(w, "publish_date", s.publish_date);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

UniformDraw random_uniform_draw() {
  return [rng = std::mt19937_64{std::random_device{}()}]() mutable {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  };
}

LangSmithTracer::LangSmithTracer(LangSmithSettings settings, TracedModelSettings model, Logger& log,
                                 SenderLimits limits, UniformDraw draw)
    : log_(log), settings_(settings), model_(model), draw_(std::move(draw)), sender_(std::move(settings), limits, log) {}

LangSmithRun LangSmithTracer::llm_run(const LangSmithRun& root, const StepRecord& step, const AttemptOutcome& outcome,
                                      bool failed) const {
  LangSmithRun run = child_run(root, step.name, "llm", step.started);
  run.end_time = std::max(run.start_time, step.started + step.latency);
  run.inputs = hidden_or(settings_.hide_inputs, json_object([&](JsonWriter& w) { write_messages(w, step.messages); }));
  if (failed) {
    run.error = outcome.error->describe();
  } else {
    run.outputs = hidden_or(settings_.hide_outputs, json_object([&](JsonWriter& w) {
                              write_messages(w, {{"assistant", step.output}});
                              // The search step's product is its sources, not its text.
                              if (step.name == "search") write_sources(w, outcome.sources);
                            }));
  }
  run.extra = json_object([&](JsonWriter& w) {
    w.Key("metadata");
    w.StartObject();
    if (!settings_.hide_metadata) {
      write_key_string(w, "ls_provider", kProvider);
      write_key_string(w, "ls_model_name", step.model);
      write_key_string(w, "ls_model_type", "chat");
      if (model_.temperature) {
        w.Key("ls_temperature");
        w.Double(*model_.temperature);
      }
      if (model_.max_tokens) {
        w.Key("ls_max_tokens");
        w.Int(*model_.max_tokens);
      }
      if (!step.finish_reason.empty()) write_key_string(w, "finish_reason", step.finish_reason);
      // The platform's records know a call by these.
      if (!step.request_id.empty()) write_key_string(w, "request_id", step.request_id);
      if (!step.response_id.empty()) write_key_string(w, "response_id", step.response_id);
      w.Key("usage_metadata");
      w.StartObject();
      w.Key("input_tokens");
      w.Int64(step.usage.prompt_tokens);
      w.Key("output_tokens");
      w.Int64(step.usage.completion_tokens);
      w.Key("total_tokens");
      w.Int64(step.usage.total_tokens);
      w.EndObject();
    }
    w.EndObject();
  });
  return run;
}

void LangSmithTracer::attempt_started(const Task& task, int worker) {
  {
    // Drawn per trace: an unsampled root is never opened, so its children and patch never go either.
    std::lock_guard lk(mu_);
    if (settings_.sampling_rate < 1.0 && !(draw_() < settings_.sampling_rate)) return;
  }
  LangSmithRun root = root_run("topic_analysis", "chain", WallClock::now());
  root.inputs =
      hidden_or(settings_.hide_inputs, json_object([&](JsonWriter& w) { write_key_string(w, "topic", task.topic); }));
  root.extra = json_object([&](JsonWriter& w) {
    w.Key("metadata");
    w.StartObject();
    if (settings_.hide_metadata) {
      w.EndObject();
      return;
    }
    w.Key("task_id");
    w.Uint64(task.id);
    w.Key("round");
    w.Uint(task.round);
    w.Key("attempt");
    w.Int(task.attempt);
    w.Key("worker");
    w.Int(worker);
    w.EndObject();
  });
  {
    std::lock_guard lk(mu_);
    open_.insert_or_assign(AttemptKey{task.round, task.id, task.attempt}, patch_of(root));
  }
  sender_.enqueue({RunOp::Kind::post, std::move(root)});
}

void LangSmithTracer::attempt_ended(const Task& task, const AttemptOutcome& outcome, int /*worker*/) {
  const auto ended = WallClock::now();
  LangSmithRun root;
  {
    std::lock_guard lk(mu_);
    auto it = open_.find(AttemptKey{task.round, task.id, task.attempt});
    if (it == open_.end()) return;
    root = std::move(it->second);
    open_.erase(it);
  }
  // The pipeline stops at the first failing call, and names its step and request_id in the error.
  for (std::size_t i = 0; i < outcome.steps.size(); ++i) {
    const StepRecord& step = outcome.steps[i];
    const bool failed = outcome.error && i + 1 == outcome.steps.size() &&
                        outcome.error->message.starts_with(step.error_prefix());
    sender_.enqueue({RunOp::Kind::post, llm_run(root, step, outcome, failed)});
  }
  root.end_time = std::max(ended, root.start_time);
  if (outcome.error) {
    root.error = std::string(to_string(outcome.error->kind)) + ": " + outcome.error->describe();
  } else {
    root.outputs = hidden_or(settings_.hide_outputs,
                             json_object([&](JsonWriter& w) { write_key_string(w, "analysis", outcome.analysis); }));
  }
  sender_.enqueue({RunOp::Kind::patch, std::move(root)});
}

void LangSmithTracer::close(std::chrono::milliseconds grace) {
  {
    std::lock_guard lk(mu_);
    if (closed_) return;
    closed_ = true;
  }
  const SenderTotals t = sender_.close(grace);
  std::string line = "langsmith: " + std::to_string(t.sent) + " run records sent in " +
                     std::to_string(t.batches) + " batches to project '" + settings_.project + "'; " +
                     std::to_string(t.dropped()) + " dropped";
  if (t.dropped() > 0) {
    line += " (queue full " + std::to_string(t.queue_full) + ", rejected " + std::to_string(t.rejected) +
            ", unreachable " + std::to_string(t.unreachable) + ", root lost " + std::to_string(t.orphaned) +
            ", unsent at exit " + std::to_string(t.unsent_at_exit) + ")";
  }
  t.dropped() > 0 ? log_.warn(line) : log_.info(line);
}

}  // namespace cbm
