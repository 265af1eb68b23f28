// The library's Executor (include/concurrent_bigmodel/executor.hpp): checks the public Config, builds
// the internal RunConfig from it and the call's topics, and runs run_rounds() with observers that hand
// each terminal record to the caller.
#include "concurrent_bigmodel/executor.hpp"

#include <exception>
#include <mutex>
#include <stdexcept>

#include "cost_estimate.hpp"
#include "public_config.hpp"
#include "run_driver.hpp"
#include "topic_rules.hpp"

namespace concurrent_bigmodel {
namespace {

Usage public_usage(const cbm::Usage& u) { return {u.prompt_tokens, u.completion_tokens, u.total_tokens}; }

Result public_result(const cbm::TaskResult& t) {
  Result r;
  r.id = t.id;
  r.round = t.round;
  r.topic = t.topic;
  for (const auto& f : t.fields) r.fields.emplace_back(f.name, f.value);
  r.status = t.status == cbm::TaskStatus::succeeded ? Status::succeeded
             : t.status == cbm::TaskStatus::cancelled ? Status::cancelled
                                                      : Status::failed;
  r.analysis = t.analysis;
  for (const auto& s : t.sources) r.sources.push_back({s.title, s.link, s.media, s.publish_date});
  for (const auto& s : t.steps) {
    r.steps.push_back({s.name, s.model, s.finish_reason, public_usage(s.usage), s.latency, s.request_id,
                       s.response_id, s.reasoning, s.replaced_characters});
  }
  if (t.error) {
    r.error = Error{std::string(cbm::to_string(t.error->error_class)), std::string(cbm::to_string(t.error->kind)),
                    t.error->http_status, t.error->code, t.error->message};
  }
  r.attempts = t.attempts;
  r.worker = t.worker;
  r.usage = public_usage(t.usage);
  r.started = t.started;
  r.finished = t.finished;
  r.execution_time = t.execution_time;
  r.duplicate_of = t.duplicate_of;
  return r;
}

Summary public_summary(const cbm::RunOutcome& o) {
  Summary s;
  s.total_tasks = o.totals.total;
  s.successful_tasks = o.totals.succeeded;
  s.failed_tasks = o.totals.failed;
  s.cancelled_tasks = o.totals.cancelled;
  s.not_read = o.totals.not_read_unknown ? std::nullopt : std::optional<std::uint64_t>(o.totals.not_read);
  s.total_attempts = o.totals.attempts;
  s.usage = public_usage(o.totals.usage);
  if (o.totals.timed_tasks > 0) {
    s.average_execution_time = o.totals.execution_time_sum / static_cast<std::int64_t>(o.totals.timed_tasks);
  }
  s.interrupted = o.interrupted;
  s.interrupted_by_signal = o.interrupted_by_signal;
  s.abort_reason = o.abort_reason;
  s.report_written = o.report_written;
  s.report_error = o.report_error;
  s.exit_status = o.exit_status;
  return s;
}

// The run's usage priced (the same figure as the report's estimated_cost).
void add_cost(Summary& s, const cbm::RunOutcome& o, const cbm::RunConfig& config) {
  const cbm::CostFigure cost = cbm::cost_of(o.totals.spend, *config.prices, config.pipeline.search_settings.engine);
  if (cost.known()) s.estimated_cost = cost.amount;
  s.cost_currency = config.prices->currency;
  s.price_table_date = config.prices->date;
}

Estimate public_estimate(const cbm::RunConfig& config) {
  if (auto problem = cbm::dry_run_problem(config.resume)) {
    std::string text = "concurrent_bigmodel::Config: ";
    text += problem->field;
    text += ": ";
    text += problem->message;
    throw std::invalid_argument(text);
  }
  const cbm::CostEstimate e = cbm::estimate_run(config);
  return Estimate{e.topics, cbm::estimate_text(e, config), cbm::estimate_json(e, config)};
}

// Hands every terminal record to the caller's callback and, for execute_concurrent, keeps it. The
// ledger tells its observers one call at a time (record_outbox.hpp), so calls never overlap. A callback
// that throws stops the run now; its exception is rethrown when the run has ended.
class ResultSink final : public cbm::RunObserver {
 public:
  ResultSink(const std::function<void(const Result&)>& callback, std::vector<Result>* keep, cbm::RunControl& control)
      : callback_(callback), keep_(keep), control_(control) {}

  void task_finished(const cbm::TaskResult& task) override {
    if (!callback_ && keep_ == nullptr) return;
    Result r = public_result(task);
    if (callback_ && !error_) {
      try {
        callback_(r);
      } catch (...) {
        error_ = std::current_exception();
        control_.stop_now();
      }
    }
    if (keep_ != nullptr) keep_->push_back(std::move(r));
  }

  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  const std::function<void(const Result&)>& callback_;
  std::vector<Result>* keep_;
  cbm::RunControl& control_;
  std::exception_ptr error_;
};

cbm::InputFormat internal_format(InputFormat f, const std::filesystem::path& file) {
  switch (f) {
    case InputFormat::text:
      return cbm::InputFormat::text;
    case InputFormat::jsonl:
      return cbm::InputFormat::jsonl;
    case InputFormat::csv:
      return cbm::InputFormat::csv;
    case InputFormat::by_extension:
      break;
  }
  return cbm::input_format_of_path(file.string());
}

}  // namespace

struct Executor::Impl {
  cbm::RunConfig base;
  InputFormat input_format = InputFormat::by_extension;
  std::function<void(const Result&)> callback;

  // The stop state: requests reach the run in progress, or wait for the next one.
  std::mutex mu;
  cbm::RunControl* active = nullptr;
  bool running = false;
  cbm::StopLevel pending_level = cbm::StopLevel::none;
  int pending_signal = 0;

  // Applies a stop request to `control` (under mu).
  void interrupt(cbm::StopLevel level, int signal, bool escalate) {
    if (active != nullptr) {
      active->interrupt(level, signal, escalate);
      return;
    }
    if (signal != 0 && pending_signal == 0) pending_signal = signal;
    if (level == cbm::StopLevel::now || (escalate && pending_level != cbm::StopLevel::none)) {
      pending_level = cbm::StopLevel::now;
    } else if (pending_level == cbm::StopLevel::none) {
      pending_level = level;
    }
  }

  Summary run(cbm::RunConfig config, std::vector<Result>* keep, std::vector<NotRead>* unread = nullptr) {
    cbm::RunControl control;
    {
      std::lock_guard lock(mu);
      if (running) throw std::logic_error("concurrent_bigmodel::Executor: a run is already in progress");
      running = true;
      active = &control;
      if (pending_level != cbm::StopLevel::none) control.interrupt(pending_level, pending_signal, false);
      pending_level = cbm::StopLevel::none;
      pending_signal = 0;
    }
    struct Detach {
      Impl& impl;
      ~Detach() {
        std::lock_guard lock(impl.mu);
        impl.active = nullptr;
        impl.running = false;
      }
    } detach{*this};

    ResultSink sink(callback, keep, control);
    const cbm::RunOutcome outcome = cbm::run_rounds(config, control, sink);
    sink.rethrow();
    if (unread != nullptr) {
      for (const auto& u : outcome.unread) unread->push_back({u.round, u.first_id, u.end_id, u.count()});
    }
    Summary summary = public_summary(outcome);
    add_cost(summary, outcome, config);
    return summary;
  }

  cbm::RunConfig with_topics(const std::vector<std::string>& topics, int iterations) const {
    std::vector<Row> rows;
    rows.reserve(topics.size());
    for (const auto& t : topics) rows.push_back({t, {}});
    return with_rows(rows, iterations, "topic ");
  }

  cbm::RunConfig with_rows(const std::vector<Row>& rows, int iterations, const char* what = "row ") const {
    if (rows.empty()) throw std::invalid_argument("concurrent_bigmodel::Executor: no topics");
    const std::vector<std::string> required = base.pipeline.prompts.field_names();
    std::vector<cbm::TopicRow> checked;
    checked.reserve(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const std::string which = "concurrent_bigmodel::Executor: " + std::string(what) + std::to_string(i);
      auto topic = cbm::checked_topic(rows[i].topic);
      if (!topic) {
        if (topic.error().kind == cbm::TopicProblem::Kind::empty) throw std::invalid_argument(which + " is empty");
        throw std::invalid_argument(which + " " + topic.error().what);
      }
      cbm::TopicRow row{std::move(topic).value(), {}};
      for (const auto& [name, value] : rows[i].fields) {
        std::string why = cbm::field_name_problem(name);
        if (why.empty()) why = cbm::field_value_problem(name, value);
        if (!why.empty()) throw std::invalid_argument(which + ": " + why);
        if (cbm::find_field(row.fields, name) != nullptr) {
          throw std::invalid_argument(which + ": field '" + name + "' given twice");
        }
        row.fields.push_back({name, value});
      }
      // The first row's fields are the input's: the run's start checks them against the prompts (and
      // refuses a placeholder when the first row has none, as for plain topics).
      for (const auto& name : required) {
        if (i > 0 && !rows[0].fields.empty() && cbm::find_field(row.fields, name) == nullptr) {
          throw std::invalid_argument(which + " has no field '" + name + "' (the prompts use {" + name + "})");
        }
      }
      checked.push_back(std::move(row));
    }
    cbm::RunConfig c = for_iterations(iterations);
    c.topics = std::move(checked);
    return c;
  }

  cbm::RunConfig with_file(const std::filesystem::path& topics_file, int iterations) const {
    if (topics_file.empty()) throw std::invalid_argument("concurrent_bigmodel::Executor: no topics file");
    cbm::RunConfig c = for_iterations(iterations);
    c.topics_file = topics_file.string();
    c.input_format = internal_format(input_format, topics_file);
    return c;
  }

  // The base config for a run of `iterations` rounds (the automatic keep_rounds depends on it).
  cbm::RunConfig for_iterations(int iterations) const {
    if (iterations < 0) throw std::invalid_argument("concurrent_bigmodel::Executor: iterations must not be negative");
    cbm::RunConfig c = base;
    c.iterations = iterations;
    if (c.keep_rounds < 0) c.keep_rounds = iterations == 0 ? 10 : 0;
    return c;
  }
};

Executor::Executor(Config config) : impl_(std::make_unique<Impl>()) {
  impl_->base = cbm::checked_run_config(config);
  impl_->input_format = config.input_format;
}

Executor::~Executor() = default;

void Executor::on_result(std::function<void(const Result&)> callback) {
  std::lock_guard lock(impl_->mu);
  if (impl_->running) throw std::logic_error("concurrent_bigmodel::Executor::on_result: a run is in progress");
  impl_->callback = std::move(callback);
}

Report Executor::execute_concurrent(const std::vector<std::string>& topics, int iterations) {
  Report report;
  report.summary = impl_->run(impl_->with_topics(topics, iterations), &report.results, &report.not_read);
  return report;
}

Summary Executor::run(const std::vector<std::string>& topics, int iterations) {
  return impl_->run(impl_->with_topics(topics, iterations), nullptr);
}

Report Executor::execute_rows(const std::vector<Row>& rows, int iterations) {
  Report report;
  report.summary = impl_->run(impl_->with_rows(rows, iterations), &report.results, &report.not_read);
  return report;
}

Summary Executor::run_rows(const std::vector<Row>& rows, int iterations) {
  return impl_->run(impl_->with_rows(rows, iterations), nullptr);
}

Summary Executor::run_file(const std::filesystem::path& topics_file, int iterations) {
  return impl_->run(impl_->with_file(topics_file, iterations), nullptr);
}

Estimate Executor::estimate(const std::vector<std::string>& topics, int iterations) const {
  return public_estimate(impl_->with_topics(topics, iterations));
}

Estimate Executor::estimate_rows(const std::vector<Row>& rows, int iterations) const {
  return public_estimate(impl_->with_rows(rows, iterations));
}

Estimate Executor::estimate_file(const std::filesystem::path& topics_file, int iterations) const {
  return public_estimate(impl_->with_file(topics_file, iterations));
}

void Executor::stop() {
  std::lock_guard lock(impl_->mu);
  impl_->interrupt(cbm::StopLevel::drain, 0, false);
}

void Executor::stop_now() {
  std::lock_guard lock(impl_->mu);
  impl_->interrupt(cbm::StopLevel::now, 0, false);
}

void Executor::stop_by_signal(int signal) {
  std::lock_guard lock(impl_->mu);
  impl_->interrupt(cbm::StopLevel::drain, signal, true);
}

bool Executor::stop_current(bool now, int signal) {
  std::lock_guard lock(impl_->mu);
  if (impl_->active == nullptr) return false;
  impl_->interrupt(now ? cbm::StopLevel::now : cbm::StopLevel::drain, signal, signal != 0);
  return true;
}

void Executor::reload_topics() {
  std::lock_guard lock(impl_->mu);
  if (impl_->active != nullptr) impl_->active->request_reload();
}

void Executor::log_status() {
  std::lock_guard lock(impl_->mu);
  if (impl_->active != nullptr) impl_->active->request_status();
}

}  // namespace concurrent_bigmodel
