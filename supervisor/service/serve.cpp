#include "serve.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <variant>

#include "bounded_json.hpp"
#include "exit_status.hpp"
#include "fd_limit.hpp"
#include "report_writer.hpp"
#include "result_codec.hpp"
#include "run_driver.hpp"
#include "run_totals.hpp"
#include "task_progress.hpp"

namespace cbm {
namespace {

constexpr std::uint32_t kRound = 1;
// A request body's shape: {"topics": [...], "concurrency": N} is two levels deep and holds its topics
// plus a few values; more is refused before a document is built.
constexpr std::size_t kMaxBodyDepth = 8;
constexpr std::size_t kMaxOtherValues = 64;
// A full queue's answer: come back after about this long.
constexpr std::chrono::seconds kFullRetryAfter{5};
// After the pool has stopped, answers still being written get this long.
constexpr std::chrono::milliseconds kAnswerGrace{5000};

std::string json_object(const std::function<void(JsonWriter&)>& members) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  members(w);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

HttpAnswer error_response(unsigned status, std::string_view message, bool close = false) {
  HttpAnswer r;
  r.status = status;
  r.body = json_object([&](JsonWriter& w) { write_key_string(w, "error", message); });
  r.close = close;
  return r;
}

// A POST /analyze body, checked.
struct AnalyzeRequest {
  std::vector<std::string> topics;
  std::size_t concurrency = 0;
};

// The request, or the message of a 400 naming what is wrong.
std::variant<AnalyzeRequest, std::string> parse_analyze(const std::string& body, std::size_t max_topics,
                                                         std::size_t pool) {
  rapidjson::Document doc;
  // Bounded before it is built: the topics, a few members, a shallow shape (docs/protocol.md "Service").
  if (auto problem = parse_bounded(doc, body, JsonBounds{kMaxBodyDepth, max_topics + kMaxOtherValues})) {
    return "the body is not a usable JSON request: " + *problem;
  }
  if (!doc.IsObject()) return std::string("the body must be a JSON object: {\"topics\": [...], \"concurrency\": N}");
  const auto topics = doc.FindMember("topics");
  if (topics == doc.MemberEnd()) return std::string("topics: missing (an array of strings)");
  if (!topics->value.IsArray()) return std::string("topics: must be an array of strings");
  const auto& list = topics->value.GetArray();
  if (list.Empty()) return std::string("topics: empty (give at least one topic)");
  if (list.Size() > max_topics) {
    return "topics: " + std::to_string(list.Size()) + " topics, more than the limit of " +
           std::to_string(max_topics) + " per request (--max-topics)";
  }
  AnalyzeRequest out;
  out.topics.reserve(list.Size());
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const std::string where = "topics[" + std::to_string(i) + "]: ";
    if (!list[i].IsString()) return where + "must be a string";
    auto topic = checked_topic(std::string_view(list[i].GetString(), list[i].GetStringLength()));
    if (!topic) return where + topic.error().what;
    out.topics.push_back(std::move(topic).value());
  }
  out.concurrency = pool;
  if (const auto c = doc.FindMember("concurrency"); c != doc.MemberEnd() && !c->value.IsNull()) {
    if (!c->value.IsInt64() || c->value.GetInt64() < 1) return std::string("concurrency: must be a positive integer");
    // More than the pool has is the whole pool.
    out.concurrency = std::min(pool, static_cast<std::size_t>(c->value.GetInt64()));
  }
  return out;
}

// What a run of just a request's topics would report: their counts and times and, when some were
// cancelled, what cut the batch short (the pool's abort or the service's stop).
ReportSummary batch_summary(const std::vector<TaskResult>& results, std::size_t concurrency,
                            WallClock::time_point started, Clock::duration took, const RunLedger& ledger,
                            const RunControl& control) {
  ReportSummary s;
  for (const auto& r : results) s.totals.add(r);
  s.started = started;
  s.finished = WallClock::now();
  s.took = took;
  s.concurrency = concurrency;
  s.interrupted = s.totals.cancelled > 0;
  s.iterations_completed = s.interrupted ? 0 : 1;
  if (s.interrupted) {
    s.abort_reason = ledger.abort_reason();
    s.interrupted_by_signal = control.first_signal();
  }
  s.exit_status = exit_status_of(
      RunEnding{s.abort_reason.has_value(), s.interrupted_by_signal, s.totals.succeeded == s.totals.total});
  return s;
}

// The report's shape over one request's records (in request order, ids = indexes).
std::string batch_report(const std::vector<TaskResult>& results, const ReportSummary& summary) {
  std::string body;
  ReportWriter report([&](std::string_view piece) { body.append(piece); }, summary);
  for (const auto& r : results) report.add(r);
  report.finish();
  return body;
}

std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

// Whether `given` equals `expected`, in a time that depends on the expected length only.
bool same_secret(std::string_view given, std::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

bool authorized(const std::string& header, const std::string& token) {
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() < kScheme.size() || !std::equal(kScheme.begin(), kScheme.end(), header.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      })) {
    return false;
  }
  return same_secret(std::string_view(header).substr(kScheme.size()), token);
}

}  // namespace

Service::Service(const RunConfig& config, ServeOptions options)
    : config_(config), options_(std::move(options)), server_(options_.listen, options_.http), queue_(control_) {}

Service::~Service() {
  // The handlers use the queue: the server stops first.
  server_.stop(std::chrono::milliseconds(0));
}

int Service::run() {
  check_placeholders(config_);  // a request brings topics only: no field placeholders
  ensure_open_file_limit(config_);  // before anything is sent or written
  RunParts parts(config_, control_, queue_, DrainPolicy::accepted);
  parts.ledger.begin_round(kRound);
  parts.progress.begin_round(kRound, std::nullopt);
  {
    std::lock_guard lock(mu_);
    log_ = &parts.log;
    ledger_ = &parts.ledger;
  }
  server_.start([this](const IncomingRequest& request, HttpReply reply) { return handle(request, std::move(reply)); });
  parts.log.info("serving on " + server_.url() + ": mode " + std::string(to_string(config_.mode)) +
                 ", concurrency " + std::to_string(config_.concurrency) + ", at most " +
                 std::to_string(options_.max_topics) + " topics per request and " +
                 std::to_string(options_.max_queued_topics) + " waiting" +
                 (options_.auth_token.empty() ? ", no token required" : ", a bearer token required"));
  std::cout << "serving on " << server_.url() << std::endl;

  parts.executor->run_round(kRound, queue_);

  // The pool stopped (drained, cancelled, or aborted): requests it did not read get cancelled
  // records, so each accepted request is answered whole.
  queue_.close();
  const bool aborted = parts.ledger.abort_reason().has_value();
  while (auto t = queue_.next()) {
    parts.ledger.record(TaskProgress(Task{t->id, kRound, std::move(t->topic), 0, std::move(t->fields)})
                            .cancel(CancelPoint::before_start, aborted, -1, Clock::now()));
  }
  server_.stop(kAnswerGrace);
  {
    std::lock_guard lock(mu_);
    log_ = nullptr;
    ledger_ = nullptr;
  }
  if (parts.tracer) parts.tracer->close(kTraceFlushGrace);
  parts.progress.finish();

  const auto abort_reason = parts.ledger.abort_reason();
  if (abort_reason) parts.log.error("service aborted: " + *abort_reason);
  // A stop by signal is how a service ends: it counts only when it cut work short. Failed tasks were
  // answered in their requests; they are not the service's failure.
  const int cutting_signal = control_.level() == StopLevel::now ? control_.first_signal() : 0;
  const int status = exit_status_of(RunEnding{abort_reason.has_value(), cutting_signal, true});
  parts.log.info("service stopped with exit status " + std::to_string(status) + ": " +
                 summary_line(parts.ledger.totals(), "none") + "; " + own_usage());
  return status;
}

// The engine drains (DrainPolicy::accepted): what the closed queue holds still runs, for up to
// --drain-grace; a second signal, or the grace's end, cancels what is left.
void Service::stop_by_signal(int signal) {
  std::lock_guard lock(mu_);
  if (log_ != nullptr) {
    log_->info(control_.stopping() ? "signal " + std::to_string(signal) + ": cancelling what still runs"
                                   : "signal " + std::to_string(signal) + ": taking no more requests; the accepted ones have " +
                                         std::to_string(config_.drain_grace.count()) + " ms to finish");
  }
  queue_.close();
  control_.on_stop_signal(signal);
}

void Service::log_status() {
  const BatchQueue::Gauges g = queue_.gauges();
  std::lock_guard lock(mu_);
  if (log_ == nullptr) return;
  log_->info("status: " + std::to_string(g.requests) + " requests in progress, " + std::to_string(g.in_flight) +
             " topics in flight, " + std::to_string(g.queued) + " queued");
}

std::optional<HttpAnswer> Service::handle(const IncomingRequest& request, HttpReply reply) {
  const std::string path = path_of(request.target);
  if (path == "/healthz") {
    if (request.method != "GET") {
      HttpAnswer r = error_response(405, "method not allowed: use GET /healthz");
      r.allow = "GET";
      return r;
    }
    return health();
  }
  if (path == "/analyze") {
    if (request.method != "POST") {
      HttpAnswer r = error_response(405, "method not allowed: use POST /analyze");
      r.allow = "POST";
      return r;
    }
    if (!options_.auth_token.empty() && !authorized(request.authorization, options_.auth_token)) {
      HttpAnswer r = error_response(401, "a bearer token is required: Authorization: Bearer <token>");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    return analyze(request, std::move(reply));
  }
  return error_response(404, "not found: the endpoints are POST /analyze and GET /healthz");
}

HttpAnswer Service::health() const {
  const BatchQueue::Gauges g = queue_.gauges();
  const bool draining = !queue_.accepting();
  HttpAnswer r;
  r.status = draining ? 503 : 200;
  r.close = draining;
  r.body = json_object([&](JsonWriter& w) {
    write_key_string(w, "status", draining ? "draining" : "ok");
    w.Key("requests");
    w.Uint64(g.requests);
    w.Key("in_flight");
    w.Uint64(g.in_flight);
    w.Key("queued");
    w.Uint64(g.queued);
  });
  return r;
}

std::optional<HttpAnswer> Service::analyze(const IncomingRequest& request, HttpReply reply) {
  auto parsed = parse_analyze(request.body, options_.max_topics, static_cast<std::size_t>(config_.concurrency));
  if (auto* problem = std::get_if<std::string>(&parsed)) return error_response(400, *problem);
  AnalyzeRequest& req = std::get<AnalyzeRequest>(parsed);
  const std::size_t n = req.topics.size();
  const std::size_t concurrency = req.concurrency;
  const WallClock::time_point started = WallClock::now();
  const Clock::time_point started_mono = Clock::now();
  Logger* log = nullptr;
  const RunLedger* ledger = nullptr;
  {
    std::lock_guard lock(mu_);
    log = log_;
    ledger = ledger_;
  }
  // Called once, with the batch's last record, as the ledger tells its observers (outside its lock, so
  // the batch's ending can be read from it): hands the answer's rendering to the server's thread.
  auto done = [this, reply, concurrency, started, started_mono, log,
               ledger](std::vector<TaskResult> results) mutable {
    ReportSummary summary =
        batch_summary(results, concurrency, started, Clock::now() - started_mono, *ledger, control_);
    reply.send([results = std::move(results), summary = std::move(summary), log] {
      HttpAnswer r;
      r.body = batch_report(results, summary);
      if (log != nullptr) {
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(summary.took);
        log->info("POST /analyze answered: " + summary_line(summary.totals, "in the response") + " in " +
                  std::to_string(took.count()) + " ms");
      }
      return r;
    });
  };
  const BatchQueue::Submitted submitted =
      queue_.submit(std::move(req.topics), concurrency, options_.max_queued_topics, std::move(done));
  switch (submitted.admission) {
    case BatchQueue::Admission::closed:
      return error_response(503, "the service is shutting down: no new requests", true);
    case BatchQueue::Admission::full: {
      HttpAnswer r = error_response(503, "too many topics waiting (--max-queued-topics " +
                                             std::to_string(options_.max_queued_topics) + "): try again later");
      r.headers.emplace_back("Retry-After", std::to_string(kFullRetryAfter.count()));
      return r;
    }
    case BatchQueue::Admission::accepted:
      break;
  }
  // A client that hangs up takes its unstarted topics with it: nobody would read their results.
  reply.on_client_gone([this, batch = submitted.batch, log] {
    const std::size_t dropped = queue_.abandon(batch);
    if (log != nullptr) {
      log->info("POST /analyze: the client went away; " + std::to_string(dropped) + " of its topics not run");
    }
  });
  if (log != nullptr) {
    log->info("POST /analyze accepted: " + std::to_string(n) + " topics, concurrency " +
              std::to_string(concurrency));
  }
  return std::nullopt;
}

}  // namespace cbm
