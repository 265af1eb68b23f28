// concurrent_bigmodel._core: the Python package's one binding of the library
// (include/concurrent_bigmodel/executor.hpp). Kept thin: a ConcurrentConfig becomes a Config through one
// table (kConfigFields), a Result becomes a TaskResult through one function (task_result); every check
// stays in the library, whose std::invalid_argument comes back as ValueError naming the Python field.
//
// Who runs where: a run goes on a C++ thread of its own. The calling thread waits for it in short slices
// with the GIL released; between slices it takes the GIL back to hand queued Results to the on_result
// callback (so the callback runs on the calling thread, one at a time, in every mode) and to run the
// process's Python signal handlers (PyErr_CheckSignals). A KeyboardInterrupt they raise asks the run to
// drain (stop_by_signal(SIGINT), the CLI's first Ctrl+C); a second one stops it at once. No signal
// handler is installed or changed here: the library installs none, and Python's own stay as they were.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <csignal>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api_key.hpp"
#include "concurrent_bigmodel/executor.hpp"

namespace py = pybind11;
namespace cb = concurrent_bigmodel;

namespace {

// A ConcurrentConfig field that cannot be converted: reported as ValueError naming it.
[[noreturn]] void bad_field(const char* field, const std::string& why) {
  throw py::value_error(std::string("ConcurrentConfig.") + field + ": " + why);
}

std::string type_name(py::handle v) { return py::str(py::type::handle_of(v).attr("__name__")); }

// The value converters of the table below: each takes the attribute and the field's Python name.
std::int64_t as_int(py::handle v, const char* field) {
  if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr())) bad_field(field, "expected an int, got " + type_name(v));
  const long long n = PyLong_AsLongLong(v.ptr());
  if (n == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    bad_field(field, "out of range");
  }
  return n;
}

int as_int32(py::handle v, const char* field) {
  const std::int64_t n = as_int(v, field);
  if (n < INT32_MIN || n > INT32_MAX) bad_field(field, "out of range");
  return static_cast<int>(n);
}

bool as_bool(py::handle v, const char* field) {
  if (!PyBool_Check(v.ptr())) bad_field(field, "expected True or False, got " + type_name(v));
  return v.ptr() == Py_True;
}

double as_float(py::handle v, const char* field) {
  if (PyBool_Check(v.ptr()) || !(PyFloat_Check(v.ptr()) || PyLong_Check(v.ptr()))) {
    bad_field(field, "expected a number, got " + type_name(v));
  }
  const double d = PyFloat_AsDouble(v.ptr());
  if (!std::isfinite(d)) bad_field(field, "must be a finite number");
  return d;
}

// Seconds, as the CLI's flags take them (rounded to the millisecond the same way).
std::chrono::milliseconds as_seconds(py::handle v, const char* field) {
  const double s = as_float(v, field);
  if (std::fabs(s) > 1e12) bad_field(field, "out of range");
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

std::string as_str(py::handle v, const char* field) {
  if (!PyUnicode_Check(v.ptr())) bad_field(field, "expected a str, got " + type_name(v));
  return v.cast<std::string>();
}

// None is the library's "unset" (an empty string or path).
std::string as_optional_str(py::handle v, const char* field) { return v.is_none() ? std::string() : as_str(v, field); }

template <typename Enum>
Enum as_choice(py::handle v, const char* field, std::initializer_list<std::pair<const char*, Enum>> choices) {
  const std::string s = as_str(v, field);
  std::string names;
  for (const auto& [name, value] : choices) {
    if (s == name) return value;
    names += names.empty() ? "" : " | ";
    names += name;
  }
  bad_field(field, "'" + s + "' is not one of " + names);
}

std::string file_text(py::handle v, const char* field) {
  const std::string path = as_optional_str(v, field);
  if (path.empty()) return {};
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) bad_field(field, "cannot read '" + path + "'");
  return text.str();
}

// One row per ConcurrentConfig field (python/concurrent_bigmodel/_config.py): its Python name, the
// Config member it sets (the library's error messages name that one), and the conversion. A field added
// to the dataclass needs its row here; a dataclass field without a row is refused as unknown.
struct ConfigField {
  const char* python;
  const char* library;
  void (*set)(cb::Config&, py::handle, const char*);
};

#define CBM_FIELD(py_name, member, expr) \
  ConfigField { #py_name, #member, [](cb::Config& c, py::handle v, const char* f) { c.member = expr; } }
#define CBM_SAME(member, convert) CBM_FIELD(member, member, convert(v, f))

const ConfigField kConfigFields[] = {
    CBM_SAME(concurrency, as_int32),
    CBM_FIELD(mode, mode,
              as_choice<cb::Mode>(v, f, {{"multiprocessing", cb::Mode::multiprocessing},
                                         {"threading", cb::Mode::threading},
                                         {"asyncio", cb::Mode::asyncio}})),
    CBM_SAME(workers, as_int32),
    CBM_SAME(timeout, as_seconds),
    CBM_SAME(delay, as_seconds),
    CBM_SAME(max_retries, as_int32),
    CBM_SAME(chat_model, as_str),
    CBM_SAME(tool_model, as_str),
    CBM_SAME(batch_size, as_int32),
    CBM_FIELD(output, output, as_optional_str(v, f)),
    CBM_FIELD(quiet, console, !as_bool(v, f)),
    // None: the environment's, as the CLI reads it, else BigModel's (Config's default).
    CBM_FIELD(base_url, base_url, cbm::resolve_base_url(as_optional_str(v, f), cb::Config{}.base_url)),
    CBM_SAME(allow_insecure_http, as_bool),
    CBM_FIELD(no_search, search, !as_bool(v, f)),
    CBM_FIELD(api_flavor, api_flavor,
              as_choice<cb::ApiFlavor>(v, f, {{"bigmodel", cb::ApiFlavor::bigmodel}, {"openai", cb::ApiFlavor::openai}})),
    CBM_SAME(accept_language, as_str),
    CBM_FIELD(prompt_file, prompts, file_text(v, f)),
    CBM_SAME(stream, as_bool),
    CBM_FIELD(input_format, input_format,
              v.is_none() ? cb::InputFormat::by_extension
                          : as_choice<cb::InputFormat>(v, f, {{"text", cb::InputFormat::text},
                                                              {"jsonl", cb::InputFormat::jsonl},
                                                              {"csv", cb::InputFormat::csv}})),
    CBM_SAME(temperature, as_float),
    CBM_SAME(top_p, as_float),
    CBM_SAME(max_tokens, as_int32),
    CBM_FIELD(thinking, thinking,
              as_choice<cb::Thinking>(v, f, {{"enabled", cb::Thinking::enabled},
                                             {"disabled", cb::Thinking::disabled},
                                             {"auto", cb::Thinking::automatic}})),
    CBM_FIELD(response_format, response_format,
              as_choice<cb::ResponseFormat>(v, f, {{"text", cb::ResponseFormat::text},
                                                   {"json", cb::ResponseFormat::json}})),
    CBM_SAME(keep_reasoning, as_bool),
    CBM_FIELD(search_via, search_via,
              as_choice<cb::SearchVia>(v, f, {{"tool", cb::SearchVia::tool}, {"api", cb::SearchVia::api}})),
    CBM_SAME(search_engine, as_str),
    CBM_SAME(search_recency, as_str),
    CBM_SAME(search_domain, as_str),
    CBM_SAME(search_count, as_int32),
    CBM_SAME(search_content_size, as_str),
    CBM_SAME(allow_unlisted_model, as_bool),
    CBM_SAME(kill_grace, as_seconds),
    CBM_SAME(drain_grace, as_seconds),
    CBM_FIELD(rpm, requests_per_minute, as_int(v, f)),
    CBM_FIELD(tpm, tokens_per_minute, as_int(v, f)),
    CBM_FIELD(on_quota, on_quota,
              as_choice<cb::OnQuota>(v, f, {{"wait", cb::OnQuota::wait}, {"stop", cb::OnQuota::stop}})),
    CBM_SAME(accept_incomplete, as_bool),
    CBM_FIELD(price_file, price_file, as_optional_str(v, f)),
    CBM_SAME(max_tokens_total, as_int),
    CBM_SAME(max_cost, as_float),
    CBM_FIELD(budget_period, budget_period,
              as_choice<cb::BudgetPeriod>(v, f, {{"run", cb::BudgetPeriod::run}, {"day", cb::BudgetPeriod::day}})),
    CBM_FIELD(via, via, as_choice<cb::Via>(v, f, {{"online", cb::Via::online}, {"batch", cb::Via::batch}})),
    CBM_FIELD(batch_retry, batch_retry,
              as_choice<cb::BatchRetry>(v, f, {{"batch", cb::BatchRetry::batch},
                                               {"online", cb::BatchRetry::online},
                                               {"none", cb::BatchRetry::none}})),
    CBM_SAME(cancel_batch_on_stop, as_bool),
    CBM_SAME(max_restarts, as_int32),
    CBM_SAME(restart_period, as_seconds),
    CBM_FIELD(journal, journal, as_optional_str(v, f)),
    CBM_SAME(resume, as_bool),
    CBM_SAME(force_resume, as_bool),
    CBM_SAME(fresh, as_bool),
    CBM_FIELD(keep_rounds, keep_rounds, v.is_none() ? -1 : as_int32(v, f)),
    CBM_FIELD(log_file, log_file, as_optional_str(v, f)),
    CBM_FIELD(results_jsonl, results_jsonl, as_optional_str(v, f)),
    CBM_FIELD(output_mode, output_mode, static_cast<unsigned>(as_int(v, f))),
    CBM_FIELD(metrics_addr, metrics_address, as_optional_str(v, f)),
    CBM_SAME(progress_interval, as_seconds),
};

#undef CBM_SAME
#undef CBM_FIELD

cb::Config config_of(py::handle dataclass) {
  if (!py::hasattr(dataclass, "__dataclass_fields__")) {
    throw py::type_error("config: expected a ConcurrentConfig, got " + type_name(dataclass));
  }
  for (const auto& name : py::dict(dataclass.attr("__dataclass_fields__"))) {
    const std::string field = py::str(name.first);
    bool known = false;
    for (const auto& row : kConfigFields) known = known || field == row.python;
    if (!known) bad_field(field.c_str(), "no such setting");
  }
  cb::Config c;
  for (const auto& row : kConfigFields) row.set(c, dataclass.attr(row.python), row.python);
  return c;
}

// The library's "concurrent_bigmodel::Config: FIELD: why" with FIELD as the Python tool calls it.
std::string python_message(const std::string& message) {
  static const std::string prefix = "concurrent_bigmodel::Config: ";
  if (message.rfind(prefix, 0) != 0) return message;
  const std::string rest = message.substr(prefix.size());
  const std::string field = rest.substr(0, rest.find(':'));
  if (field == "api_key") return rest;  // the executor's argument, not a config field
  for (const auto& row : kConfigFields) {
    if (field == row.library) {
      std::string out = "ConcurrentConfig.";
      out += row.python;
      out += rest.substr(field.size());
      return out;
    }
  }
  return rest;
}

// Milliseconds as the report writes seconds.
double seconds_of(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

std::int64_t epoch_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// The report's time format: 2026-01-02T03:04:05.678Z.
std::string iso8601(std::int64_t ms) {
  const auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char date[32];
  const std::size_t n = std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(date, n);
  const int millis = static_cast<int>(ms % 1000);
  out += '.';
  out += static_cast<char>('0' + millis / 100);
  out += static_cast<char>('0' + millis / 10 % 10);
  out += static_cast<char>('0' + millis % 10);
  out += 'Z';
  return out;
}

py::dict usage_of(const cb::Usage& u) {
  py::dict d;
  d["prompt_tokens"] = u.prompt_tokens;
  d["completion_tokens"] = u.completion_tokens;
  d["total_tokens"] = u.total_tokens;
  return d;
}

const char* status_name(cb::Status s) {
  switch (s) {
    case cb::Status::succeeded:
      return "succeeded";
    case cb::Status::cancelled:
      return "cancelled";
    case cb::Status::failed:
      break;
  }
  return "failed";
}

// A Result as the TaskResult dataclass (python/concurrent_bigmodel/_results.py), keyed as the report.
py::object task_result(const py::object& result_type, const cb::Result& r) {
  py::dict k;
  k["topic"] = r.topic;
  k["success"] = r.success();
  k["analysis"] = r.analysis;
  k["error_message"] = r.error ? py::object(py::str(r.error_message())) : py::object(py::none());
  k["execution_time"] = seconds_of(r.execution_time);
  k["status"] = status_name(r.status);
  k["id"] = r.id;
  k["round"] = r.round;
  py::dict fields;
  for (const auto& [name, value] : r.fields) fields[py::str(name)] = value;
  k["fields"] = fields;
  k["attempts"] = r.attempts;
  k["worker"] = r.worker;
  const std::int64_t started = epoch_ms(r.started);
  const std::int64_t finished = epoch_ms(r.finished);
  k["started_at"] = iso8601(started);
  k["finished_at"] = iso8601(finished);
  k["started_at_ms"] = started;
  k["finished_at_ms"] = finished;
  k["usage"] = usage_of(r.usage);
  py::list sources;
  for (const auto& s : r.sources) {
    py::dict d;
    d["title"] = s.title;
    d["link"] = s.link;
    d["media"] = s.media;
    d["publish_date"] = s.publish_date;
    sources.append(d);
  }
  k["sources"] = sources;
  py::list steps;
  for (const auto& s : r.steps) {
    py::dict d;
    d["name"] = s.name;
    d["model"] = s.model;
    d["finish_reason"] = s.finish_reason;
    d["latency_ms"] = s.latency.count();
    d["usage"] = usage_of(s.usage);
    // Left out when empty, as in the report.
    if (!s.request_id.empty()) d["request_id"] = s.request_id;
    if (!s.response_id.empty()) d["response_id"] = s.response_id;
    if (!s.reasoning.empty()) d["reasoning"] = s.reasoning;
    if (s.replaced_characters != 0) d["replaced_characters"] = s.replaced_characters;
    steps.append(d);
  }
  k["steps"] = steps;
  if (r.error) {
    py::dict e;
    e["class"] = r.error->error_class;
    e["kind"] = r.error->kind;
    e["http_status"] = r.error->http_status;
    e["code"] = r.error->code;
    e["message"] = r.error->message;
    k["error"] = e;
  }
  if (r.duplicate_of) k["duplicate_of"] = *r.duplicate_of;
  return result_type(**k);
}

py::dict summary_of(const cb::Summary& s) {
  py::dict d;
  d["total_tasks"] = s.total_tasks;
  d["successful_tasks"] = s.successful_tasks;
  d["failed_tasks"] = s.failed_tasks;
  d["cancelled_tasks"] = s.cancelled_tasks;
  d["total_attempts"] = s.total_attempts;
  d["usage"] = usage_of(s.usage);
  d["average_execution_time"] = seconds_of(s.average_execution_time);
  d["interrupted"] = s.interrupted;
  d["interrupted_by_signal"] = s.interrupted_by_signal;
  d["abort_reason"] = s.abort_reason ? py::object(py::str(*s.abort_reason)) : py::object(py::none());
  d["report_written"] = s.report_written;
  d["report_error"] = s.report_error ? py::object(py::str(*s.report_error)) : py::object(py::none());
  d["not_read"] = s.not_read ? py::object(py::int_(*s.not_read)) : py::object(py::none());
  d["estimated_cost"] = s.estimated_cost ? py::object(py::float_(*s.estimated_cost)) : py::object(py::none());
  d["cost_currency"] = s.cost_currency;
  d["price_table_date"] = s.price_table_date;
  d["exit_status"] = s.exit_status;
  return d;
}

std::vector<std::string> topics_of(py::handle topics) {
  if (PyUnicode_Check(topics.ptr())) throw py::type_error("topics: expected a list of str, got one str");
  std::vector<std::string> out;
  for (py::handle t : py::iter(topics)) {
    if (!PyUnicode_Check(t.ptr())) {
      throw py::type_error("topics: topic " + std::to_string(out.size()) + " is a " + type_name(t) + ", not a str");
    }
    out.push_back(t.cast<std::string>());
  }
  return out;
}

// How long the calling thread waits, GIL released, before it looks at the signal handlers again.
constexpr std::chrono::milliseconds kSlice{50};

class Executor {
 public:
  Executor(py::handle config, std::optional<std::string> api_key, const std::string& worker, py::object result_type)
      : result_type_(std::move(result_type)) {
    cb::Config c = config_of(config);
    auto key = cbm::resolve_api_key(api_key && !api_key->empty() ? api_key : std::nullopt);
    if (!key) throw py::value_error(std::string("api_key: none given: pass api_key= or set ") + cbm::kApiKeyVariables);
    c.api_key = std::move(*key);
    c.worker_executable = worker;
    try {
      executor_ = std::make_unique<cb::Executor>(std::move(c));
    } catch (const std::invalid_argument& e) {
      throw py::value_error(python_message(e.what()));
    }
    // Results wait for the calling thread in a bounded queue: a slow callback holds the run back
    // rather than letting the waiting results grow without bound.
    executor_->on_result([this](const cb::Result& r) {
      std::unique_lock lock(mu_);
      room_.wait(lock, [&] { return !forward_ || pending_.size() < kMaxPending; });
      if (!forward_) return;
      pending_.push_back(r);
      wake_.notify_one();
    });
  }

  // kind: "results" (execute_concurrent: every Result kept), "summary" (run) or "file" (run_file).
  // Returns (results or None, summary, Ctrl+C count); the Python layer turns the last two into
  // KeyboardInterrupt or RunAborted.
  py::tuple run(const std::string& kind, py::handle input, int iterations, py::object callback) {
    std::vector<std::string> topics;
    std::string file;
    if (kind == "file") {
      file = py::str(input);
    } else {
      topics = topics_of(input);
    }
    {
      std::lock_guard lock(mu_);
      // The library refuses a second run too, but only once this one's state below would be reset.
      if (running_) throw std::logic_error("concurrent_bigmodel: this executor's run is in progress");
      running_ = true;
      forward_ = !callback.is_none();
      pending_.clear();
      done_ = false;
    }
    struct Finish {
      Executor& self;
      ~Finish() {
        std::lock_guard lock(self.mu_);
        self.running_ = false;
      }
    } finish{*this};
    std::optional<cb::Report> report;
    cb::Summary summary;
    std::exception_ptr failure;
    std::thread engine([&] {
      try {
        if (kind == "results") {
          report = executor_->execute_concurrent(topics, iterations);
        } else if (kind == "summary") {
          summary = executor_->run(topics, iterations);
        } else {
          summary = executor_->run_file(file, iterations);
        }
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard lock(mu_);
      done_ = true;
      wake_.notify_one();
    });
    // Whatever leaves this call early (an allocation failure, an error from a lock), the run is stopped
    // and its thread joined: a joinable std::thread destroyed would end the whole process.
    struct JoinOnExit {
      std::thread& thread;
      cb::Executor& executor;
      Executor& self;
      ~JoinOnExit() {
        if (!thread.joinable()) return;
        self.stop_forwarding();
        executor.stop_current(true);
        py::gil_scoped_release release;
        thread.join();
      }
    } join_on_exit{engine, *executor_, *this};

    int interrupts = 0;
    std::optional<py::error_already_set> python_error;
    // A KeyboardInterrupt (from the signal handlers, or raised inside the callback by them) drains the
    // run, a second stops it now; any other exception stops it now and is raised when it has ended.
    // A stop goes to this run only (stop_current): once it is over, the library keeps nothing for the
    // next one.
    bool done = false;
    auto absorb = [&](py::error_already_set&& e) {
      if (e.matches(PyExc_KeyboardInterrupt)) {
        ++interrupts;
        executor_->stop_current(false, SIGINT);
      } else {
        if (!python_error) python_error.emplace(std::move(e));
        executor_->stop_current(true);
      }
    };
    while (!done) {
      std::deque<cb::Result> batch;
      {
        py::gil_scoped_release release;
        std::unique_lock lock(mu_);
        wake_.wait_for(lock, kSlice, [&] { return done_ || !pending_.empty(); });
        batch.swap(pending_);
        room_.notify_all();
        done = done_;
      }
      for (const auto& r : batch) {
        if (python_error) break;
        try {
          callback(task_result(result_type_, r));
        } catch (py::error_already_set& e) {
          absorb(std::move(e));
        }
      }
      if (PyErr_CheckSignals() != 0) absorb(py::error_already_set());
    }
    {
      py::gil_scoped_release release;
      engine.join();
    }
    if (python_error) throw std::move(*python_error);
    if (failure) {
      try {
        std::rethrow_exception(failure);
      } catch (const std::invalid_argument& e) {
        throw py::value_error(python_message(e.what()));
      }
    }
    py::object results = py::none();
    if (report) {
      py::list list;
      for (const auto& r : report->results) list.append(task_result(result_type_, r));
      results = list;
      summary = report->summary;
    }
    return py::make_tuple(results, summary_of(summary), interrupts);
  }

  void stop() { executor_->stop(); }
  void stop_now() { executor_->stop_now(); }
  // Results are no longer handed over: a callback waiting for room goes on.
  void stop_forwarding() {
    std::lock_guard lock(mu_);
    forward_ = false;
    room_.notify_all();
  }
  bool stop_current_now() { return executor_->stop_current(true); }
  void reload_topics() { executor_->reload_topics(); }
  void log_status() { executor_->log_status(); }

 private:
  py::object result_type_;
  std::mutex mu_;
  std::condition_variable wake_;
  static constexpr std::size_t kMaxPending = 4096;
  std::deque<cb::Result> pending_;  // Results for the callback, not yet handed over (at most kMaxPending)
  std::condition_variable room_;    // the engine's callback: room in pending_, or forwarding ended
  bool running_ = false;            // a call of run() is in progress
  bool forward_ = false;            // this run has a callback
  bool done_ = false;               // the engine thread's call has returned
  std::unique_ptr<cb::Executor> executor_;  // last: its callback uses the members above
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "The C++ engine behind concurrent_bigmodel (use ConcurrentBigModelExecutor, not this).";
  py::class_<Executor>(m, "Executor")
      .def(py::init<py::handle, std::optional<std::string>, const std::string&, py::object>(), py::arg("config"),
           py::arg("api_key"), py::arg("worker"), py::arg("result_type"))
      .def("run", &Executor::run, py::arg("kind"), py::arg("input"), py::arg("iterations"), py::arg("callback"))
      .def("stop", &Executor::stop, py::call_guard<py::gil_scoped_release>())
      .def("stop_now", &Executor::stop_now, py::call_guard<py::gil_scoped_release>())
      .def("stop_current_now", &Executor::stop_current_now, py::call_guard<py::gil_scoped_release>())
      .def("reload_topics", &Executor::reload_topics, py::call_guard<py::gil_scoped_release>())
      .def("log_status", &Executor::log_status, py::call_guard<py::gil_scoped_release>());
  m.def("config_fields", [] {
    py::list names;
    for (const auto& row : kConfigFields) names.append(row.python);
    return names;
  });
}
