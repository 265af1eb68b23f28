#include "session.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <cstdio>
#include <stdexcept>
#include <utility>
#include <variant>

#include "answer.h"
#include "openai_strict.h"
#include "peer_killer.h"

namespace simulator {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;

constexpr std::string_view kChatPath = "/chat/completions";
constexpr std::string_view kWebSearchPath = "/web_search";
constexpr std::string_view kJson = "application/json; charset=UTF-8";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kInvalidJsonBody = R"({"id": nope)";
constexpr std::string_view kServiceUnavailablePage =
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n";
constexpr std::uint32_t kHeaderLimit = 16 * 1024;
constexpr std::size_t kDripBytes = 120;  // at one byte per interval: about a minute
constexpr auto kDripInterval = std::chrono::milliseconds(500);
constexpr auto kHoldPoll = std::chrono::milliseconds(10);  // how often a held answer looks for the release

// The token of an `Authorization: Bearer <token>` header (possibly empty); nullopt when the header is
// absent or uses another scheme.
std::optional<std::string_view> bearer_token(std::string_view header) {
  constexpr std::string_view kScheme = "Bearer";
  if (header.size() < kScheme.size() || !boost::beast::iequals(header.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  std::string_view token = header.substr(kScheme.size());
  if (!token.empty() && token.front() != ' ') return std::nullopt;  // "Bearerx" is another scheme
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

std::string detail_body(std::string_view message) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("detail");
  writer.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

// Where a Batch API resource starts in `path`: "/files" or "/batches" as a whole segment.
std::optional<std::size_t> segment(std::string_view path, std::string_view name) {
  for (auto at = path.find(name); at != std::string_view::npos; at = path.find(name, at + 1)) {
    const std::size_t end = at + name.size();
    if (end == path.size() || path[end] == '/') return at;
  }
  return std::nullopt;
}

// POST .../files: an upload, whose body may reach --batch-max-file-bytes.
template <class Request>
bool is_upload(const Request& request) {
  if (request.method() != http::verb::post) return false;
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const auto at = segment(path, "/files");
  return at && *at + 6 == path.size();
}

bool is_http_parse_error(boost::system::error_code ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

}  // namespace

Session::Session(Socket socket, SimulatorState& state)
    : socket_(std::move(socket)), state_(state), timer_(socket_.get_executor()) {}

void Session::start() {
  net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->read_header(); });
}

// ---- Reading a request ------------------------------------------------------------------------------------

void Session::read_header() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  // An upload may be larger than --max-body; on_header narrows the limit for every other request.
  parser_->body_limit(std::max(state_.options.max_body, state_.batches.upload_body_limit()));
  is_chat_ = false;
  batch_activity_.reset();
  fault_.reset();
  fault_param_ = 0;
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](ErrorCode ec, std::size_t) { self->on_header(ec); });
}

// Headers and body are read separately only to honour `Expect: 100-continue` (libcurl sends it for large
// bodies and would otherwise stall a second before sending the body).
void Session::on_header(ErrorCode ec) {
  if (ec) return on_read_error(ec);
  if (is_upload(parser_->get())) {
    batch_activity_.emplace(state_.batches.upload_activity());
  } else {
    const auto length = parser_->content_length();
    if (length && *length > state_.options.max_body) return on_read_error(http::error::body_limit);
    parser_->body_limit(state_.options.max_body);
  }
  if (!parser_->is_done() && boost::beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](ErrorCode write_ec, std::size_t) {
                       if (write_ec) return self->close();
                       self->read_body();
                     });
    return;
  }
  read_body();
}

void Session::read_body() {
  http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](ErrorCode ec, std::size_t) {
    if (ec) return self->on_read_error(ec);
    self->keep_alive_ = self->parser_->get().keep_alive();
    self->route();
  });
}

void Session::on_read_error(ErrorCode ec) {
  keep_alive_ = false;
  if (ec == http::error::body_limit && is_upload(parser_->get())) {
    return reply_error(BatchStore::file_too_large(state_.options.batch_max_file_bytes));
  }
  if (ec == http::error::body_limit) return reply_error(api_errors::body_too_large());
  if (ec == http::error::header_limit) return reply_error(api_errors::headers_too_large());
  const bool client_left = ec == http::error::end_of_stream || ec == http::error::partial_message;
  if (is_http_parse_error(ec) && !client_left) return reply_error(api_errors::malformed_http());
  close();
}

// ---- Deciding what to answer ------------------------------------------------------------------------------

void Session::route() {
  const auto& request = parser_->get();
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));

  if (path.ends_with(kChatPath)) {
    if (request.method() != http::verb::post) {
      return reply_error(api_errors::method_not_allowed("POST"), {"Allow", "POST"});
    }
    return handle_chat();
  }
  if (path.ends_with(kWebSearchPath) && !state_.options.strict_openai) {
    if (request.method() != http::verb::post) {
      return reply_error(api_errors::method_not_allowed("POST"), {"Allow", "POST"});
    }
    return handle_web_search();
  }
  if (path == "/runs/batch") {
    if (request.method() != http::verb::post) {
      return reply_error(api_errors::method_not_allowed("POST"), {"Allow", "POST"});
    }
    return handle_runs_batch();
  }
  if (path == "/runs") {
    if (request.method() != http::verb::get) {
      return reply_error(api_errors::method_not_allowed("GET"), {"Allow", "GET"});
    }
    return reply(200, kJson, state_.runs.to_json());
  }
  if (path == "/stats") {
    if (request.method() != http::verb::get) {
      return reply_error(api_errors::method_not_allowed("GET"), {"Allow", "GET"});
    }
    std::string stats = state_.stats.to_json();
    stats.pop_back();  // the closing brace: the Batch API's counters join as "batch"
    stats.append(R"(,"batch":)").append(state_.batches.stats_json()).push_back('}');
    return reply(200, kJson, std::move(stats));
  }
  if (path == "/stats/reset") {
    if (request.method() != http::verb::post) {
      return reply_error(api_errors::method_not_allowed("POST"), {"Allow", "POST"});
    }
    state_.stats.reset();
    state_.markers.reset();
    state_.batches.reset_stats();
    return reply(200, kJson, R"({"reset":true})");
  }
  if (path == "/batch/hold" || path == "/batch/release") {
    if (request.method() != http::verb::post) {
      return reply_error(api_errors::method_not_allowed("POST"), {"Allow", "POST"});
    }
    const std::string_view query = target.size() > path.size() ? target.substr(path.size() + 1) : "";
    std::string_view phase = "none";
    if (path == "/batch/hold") phase = query.starts_with("phase=") ? query.substr(6) : query;
    try {
      state_.batches.hold(phase);
    } catch (const std::invalid_argument& e) {
      return reply_error(api_errors::invalid_field("phase", e.what()));
    }
    std::string answer = R"({"hold":")";
    answer.append(phase).append(R"("})");
    return reply(200, kJson, std::move(answer));
  }
  if (segment(path, "/files") || segment(path, "/batches")) return handle_batch_api(path);
  reply_error(api_errors::not_found(path));
}

void Session::handle_batch_api(std::string_view path) {
  const auto files = segment(path, "/files");
  const auto batches = segment(path, "/batches");
  const auto& request = parser_->get();
  const std::string_view target = request.target();
  const std::string_view query = target.size() > path.size() ? target.substr(path.size() + 1) : "";
  const bool is_files = files && (!batches || *files < *batches);
  const std::string_view tail = path.substr(is_files ? *files + 6 : *batches + 8);  // after the resource name
  std::string_view id;
  std::string_view action;
  if (!tail.empty()) {
    const std::string_view rest = tail.substr(1);
    const std::size_t slash = rest.find('/');
    id = rest.substr(0, slash);
    if (slash != std::string_view::npos) action = rest.substr(slash + 1);
    if (id.empty() || action.find('/') != std::string_view::npos) {
      return reply_error(api_errors::not_found(path));
    }
  }
  const http::verb method = request.method();
  const auto allow = [this](std::string_view methods) {
    reply_error(api_errors::method_not_allowed(methods), {"Allow", methods});
  };
  if (!authorized()) return;
  BatchStore& store = state_.batches;
  if (is_files) {
    if (id.empty()) {
      if (method == http::verb::post) {
        return answer_when_upload_released(store.upload(request[http::field::content_type], request.body()));
      }
      if (method == http::verb::get) return send_batch_reply(store.list_files(query));
      return allow("GET, POST");
    }
    if (action.empty()) {
      if (method == http::verb::get) return send_batch_reply(store.retrieve_file(id));
      if (method == http::verb::delete_) return send_batch_reply(store.delete_file(id));
      return allow("GET, DELETE");
    }
    if (action == "content") {
      if (method != http::verb::get) return allow("GET");
      batch_activity_.emplace(store.download_activity());
      return send_batch_reply(store.file_content(id, request[http::field::range]), true);
    }
  } else {
    if (id.empty()) {
      if (method == http::verb::post) return send_batch_reply(store.create_batch(request.body()));
      if (method == http::verb::get) return send_batch_reply(store.list_batches(query));
      return allow("GET, POST");
    }
    if (action.empty()) {
      if (method == http::verb::get) return send_batch_reply(store.retrieve_batch(id));
      return allow("GET");
    }
    if (action == "cancel") {
      if (method != http::verb::post) return allow("POST");
      return send_batch_reply(store.cancel_batch(id));
    }
  }
  reply_error(api_errors::not_found(path));
}

// An upload is stored as soon as it is read; while uploads are held, its answer waits for the release.
void Session::answer_when_upload_released(BatchStore::Reply answer) {
  if (!state_.batches.upload_held()) {
    held_upload_.reset();
    return send_batch_reply(std::move(answer));
  }
  if (!held_upload_) held_upload_.emplace(state_.batches.held_upload());
  timer_.expires_after(kHoldPoll);
  timer_.async_wait([self = shared_from_this(), answer = std::move(answer)](ErrorCode ec) mutable {
    if (!ec) self->answer_when_upload_released(std::move(answer));
  });
}

// A Batch API answer. A file's content may be cut midway (batch_drop_download) or stop after half its
// body while downloads are held.
void Session::send_batch_reply(BatchStore::Reply answer, bool download) {
  const bool cut = answer.cut_midway;
  const bool held = download && state_.batches.download_held() && answer.status / 100 == 2;
  if (!cut && !held) {
    if (answer.content_range.empty())
      return reply(answer.status, answer.content_type, std::move(answer.body));
    return reply(answer.status, answer.content_type, std::move(answer.body),
                 {"Content-Range", answer.content_range});
  }
  note_outcome(answer.status);
  raw_body_ = std::move(answer.body);
  raw_sent_ = 0;
  prepare_head(answer.status, answer.content_type, raw_body_.size());
  if (!answer.content_range.empty()) head_.set(http::field::content_range, answer.content_range);
  write_head(cut ? &Session::write_half_then_close : &Session::write_half_then_wait_release);
}

// The connection ends (FIN) with the promised length unmet: a download dropped midway.
void Session::write_half_then_close() {
  net::async_write(socket_, net::buffer(raw_body_.data(), raw_body_.size() / 2),
                   [self = shared_from_this()](ErrorCode, std::size_t) {
                     self->end_admission();
                     ErrorCode ignored;
                     self->socket_.shutdown(Socket::shutdown_send, ignored);
                     self->drain_until_client_closes();
                   });
}

void Session::write_half_then_wait_release() {
  raw_sent_ = raw_body_.size() / 2;
  net::async_write(socket_, net::buffer(raw_body_.data(), raw_sent_),
                   [self = shared_from_this()](ErrorCode ec, std::size_t) {
                     if (ec) return self->close();
                     self->write_rest_when_released();
                   });
}

void Session::write_rest_when_released() {
  if (state_.batches.download_held()) {
    timer_.expires_after(kHoldPoll);
    timer_.async_wait([self = shared_from_this()](ErrorCode ec) {
      if (!ec) self->write_rest_when_released();
    });
    return;
  }
  end_admission();
  net::async_write(socket_, net::buffer(raw_body_) + raw_sent_,
                   [self = shared_from_this()](ErrorCode ec, std::size_t) { self->on_written(ec); });
}

void Session::record_request() {
  const auto& request = parser_->get();
  state_.stats.record_request({std::string(request.target()), std::string(request[http::field::user_agent]),
                               std::string(request[http::field::accept_language]), request.body()});
}

bool Session::authorized() {
  const auto& request = parser_->get();
  const auto authorization = request.find(http::field::authorization);
  const auto token = authorization == request.end() ? std::nullopt : bearer_token(authorization->value());
  if (!token) {
    reply_error(api_errors::missing_authorization());
    return false;
  }
  const std::string& expected = state_.options.api_key;
  if (token->empty() || (!expected.empty() && *token != expected)) {
    reply_error(api_errors::invalid_token());
    return false;
  }
  return true;
}

void Session::handle_chat() {
  is_chat_ = true;
  Stats& stats = state_.stats;
  stats.count_chat_request();
  record_request();

  const auto& request = parser_->get();
  if (!authorized()) return;
  const auto token = bearer_token(request[http::field::authorization]);
  if (state_.options.strict_openai) {
    if (auto rejection = openai_rejection(request.body()))
      return reply(rejection->status, kJson, rejection->body);
  }

  auto parsed = parse_chat_request(request.body(), state_.options.models);
  if (const auto* error = std::get_if<ApiError>(&parsed)) return reply_error(*error);
  chat_request_ = std::move(std::get<ChatRequest>(parsed));
  stats.count_topic(chat_request_.topic());
  if (chat_request_.stream) stats.count_stream_request();

  auto slot = state_.limiter.try_acquire(*token);
  if (!slot) return reply_error(api_errors::too_many_in_flight());
  admission_.emplace(Admission{std::move(*slot), stats.enter()});

  fault_ = choose_fault();
  if (fault_) stats.count_fault(*fault_);

  const auto delay = state_.options.latency.sample();
  if (delay <= delay.zero()) return answer_chat();
  timer_.expires_after(delay);
  timer_.async_wait([self = shared_from_this()](ErrorCode ec) {
    if (!ec) self->answer_chat();
  });
}

// The Web Search API: validated, answered at once (no latency, no faults, no concurrency limit).
void Session::handle_web_search() {
  state_.stats.count_web_search_request();
  record_request();
  if (!authorized()) return;
  auto parsed = parse_web_search_request(parser_->get().body());
  if (const auto* error = std::get_if<ApiError>(&parsed)) return reply_error(*error);
  reply(200, kJson, render_web_search_answer(std::get<WebSearchApiRequest>(parsed)));
}

// LangSmith answers with FastAPI's {"detail": "..."}.
void Session::handle_runs_batch() {
  const auto& request = parser_->get();
  const std::string& expected = state_.options.langsmith_api_key;
  if (!expected.empty() && request["x-api-key"] != expected) {
    return reply(401, kJson, R"({"detail":"Invalid token"})");
  }
  const std::string& workspace = state_.options.langsmith_workspace;
  if (!workspace.empty() && request["x-tenant-id"] != workspace) {
    return reply(403, kJson, R"({"detail":"org_scoped_key_requires_workspace"})");
  }
  switch (state_.options.runs_fault) {
    case RunsFault::kHang:
      note_outcome(0);
      return drain_until_client_closes();
    case RunsFault::k500:
      return reply(500, kJson, R"({"detail":"Internal Server Error"})");
    case RunsFault::kNone:
      break;
  }
  const RunStore::Answer answer = state_.runs.ingest(request.body());
  switch (answer.verdict) {
    case RunStore::Verdict::kAccepted:
      return reply(202, kJson, "{}");
    case RunStore::Verdict::kDuplicate:
      return reply(409, kJson, detail_body(answer.message));
    case RunStore::Verdict::kInvalid:
      return reply(400, kJson, detail_body(answer.message));
  }
}

// A marker decides when present; a spent `*K` marker leaves the request to the server-wide rates.
std::optional<Fault> Session::choose_fault() {
  if (auto fault = marker_fault(chat_request_, state_.markers, fault_param_)) return fault;
  return state_.options.fault_rates.draw();
}

// The faults that shape the wire are answered here; the platform's errors and the content faults come
// from answer.h, which the Batch API's lines share.
void Session::answer_chat() {
  if (!fault_) return send_completion();
  switch (*fault_) {
    case Fault::k429_1302_retry_after:
      return reply_error(api_errors::too_many_in_flight(), {"Retry-After", "1"});
    case Fault::k429_1302_retry_after_ms:
      return reply_error(api_errors::too_many_in_flight(), {"retry-after-ms", "200"});
    case Fault::k503:
      return reply(503, "text/html", std::string(kServiceUnavailablePage));
    case Fault::kHang:
      note_outcome(0);
      return drain_until_client_closes();
    case Fault::kDrip:
      return drip(render_body(make_completion(chat_request_, state_.options.content_bytes), Shape::kNormal));
    case Fault::kReset:
      return reset_midway(
          render_body(make_completion(chat_request_, state_.options.content_bytes), Shape::kNormal));
    case Fault::kKillClient:
      return kill_client();
    case Fault::kCodeInt: {
      const ApiError error = *platform_error(fault_param_);
      state_.stats.count_error_code(error.code);
      return reply(error.status, kJson, error.body_with_integer_code());
    }
    case Fault::kCodeIn200:
      return error_in_200(*platform_error(fault_param_));
    case Fault::kUnrecognizedArgument:
      return reply(400, kJson, unrecognized_argument_body("thinking"));
    default:
      break;
  }
  if (*fault_ == Fault::kQuotaReset || *fault_ == Fault::kQuota1310Reset) {
    const auto reset = quota_reset_time(fault_param_);
    state_.stats.note_quota_reset(reset);
    return reply_error(quota_reset(*fault_ == Fault::kQuotaReset ? 1308 : 1310, reset));
  }
  if (auto error = fault_error(*fault_, fault_param_, chat_request_.stream)) return reply_error(*error);
  send_completion();
}

// An error inside an HTTP 200 answer, as the platform sends some: a stream whose first event is
// `event: error` with the error as its data, or a plain {"error"} body.
void Session::error_in_200(const ApiError& error) {
  state_.stats.count_error_code(error.code);
  if (!chat_request_.stream) return reply(200, kJson, error.body());
  send_events({"event: error\ndata: " + error.body() + "\n\n"});
}

// ---- Well-formed answers ----------------------------------------------------------------------------------

void Session::reply(unsigned status, std::string_view content_type, std::string body, ExtraHeader extra) {
  note_outcome(status);
  response_ = {};
  response_.result(status);
  response_.set(http::field::content_type, content_type);
  if (!extra.name.empty()) response_.set(extra.name, extra.value);
  response_.keep_alive(keep_alive_);
  response_.body() = std::move(body);
  response_.prepare_payload();
  end_admission();
  http::async_write(socket_, response_,
                    [self = shared_from_this()](ErrorCode ec, std::size_t) { self->on_written(ec); });
}

void Session::reply_error(const ApiError& error, ExtraHeader extra) {
  if (is_chat_) state_.stats.count_error_code(error.code);
  reply(error.status, kJson, error.body(), extra);
}

// The answer proper, shaped by the body faults (content and finish_reason faults, broken JSON).
void Session::send_completion() {
  const Completion completion =
      faulted_completion(chat_request_, fault_, state_.options.content_bytes,
                         bearer_token(parser_->get()[http::field::authorization]).value_or(""));
  const Shape shape = fault_shape(fault_);

  if (chat_request_.stream) return send_stream(stream_frames(completion, shape));
  if (fault_ == Fault::kInvalidJson) return reply(200, kJson, std::string(kInvalidJsonBody));
  std::string body = render_body(completion, shape);
  if (fault_ == Fault::kTruncatedJson) body.resize(body.size() / 2);
  if (fault_ == Fault::kManyValues) {  // a member beside the answer's own: the JSON stays valid
    constexpr std::size_t kValues = 3500000;
    body.pop_back();  // the closing brace
    body.reserve(body.size() + 2 * kValues + 16);
    body += ",\"padding\":[0";
    for (std::size_t i = 1; i < kValues; ++i) body += ",0";
    body += "]}";
  }
  reply(200, kJson, std::move(body));
}

// Payloads of the `data:` frames. Broken-JSON faults break the first frame and end the stream there;
// sse_error follows one good chunk with an error frame. Only a complete stream ends with [DONE].
std::vector<std::string> Session::stream_frames(const Completion& completion, Shape shape) const {
  if (fault_ == Fault::kInvalidJson) return {std::string(kInvalidJsonBody)};
  std::vector<std::string> chunks = render_stream_chunks(completion, shape);
  if (fault_ == Fault::kTruncatedJson) {
    chunks.resize(1);
    chunks.front().resize(chunks.front().size() / 2);
  } else if (fault_ == Fault::kSseError) {
    chunks.resize(1);
    chunks.push_back(api_errors::network_error().body());
  } else {
    chunks.emplace_back("[DONE]");
  }
  return chunks;
}

// Each SSE frame goes out as its own HTTP chunk, as a real token stream would.
void Session::send_stream(std::vector<std::string> frames) {
  for (auto& frame : frames) frame = "data: " + frame + "\n\n";
  send_events(std::move(frames));
}

// Whole SSE events ("data: ...\n\n", or with an `event:` line), one HTTP chunk each.
void Session::send_events(std::vector<std::string> events) {
  note_outcome(200);
  frames_ = std::move(events);
  next_frame_ = 0;
  prepare_head(200, "text/event-stream; charset=UTF-8", std::nullopt);
  head_.set(http::field::cache_control, "no-cache");
  write_head(&Session::write_next_frame);
}

void Session::write_next_frame() {
  if (next_frame_ == frames_.size()) {
    end_admission();
    net::async_write(socket_, http::make_chunk_last(),
                     [self = shared_from_this()](ErrorCode ec, std::size_t) { self->on_written(ec); });
    return;
  }
  const std::string& frame = frames_[next_frame_++];
  net::async_write(socket_, http::make_chunk(net::buffer(frame)),
                   [self = shared_from_this()](ErrorCode ec, std::size_t) {
                     if (ec) return self->close();
                     self->write_next_frame();
                   });
}

// ---- Misbehaving answers ----------------------------------------------------------------------------------

// A slow-loris server: the full Content-Length is promised, one byte arrives per interval for about a
// minute, then the rest, so only a client without a read timeout ever sees the answer.
void Session::drip(std::string body) {
  note_outcome(200);
  raw_body_ = std::move(body);
  raw_sent_ = 0;
  prepare_head(200, kJson, raw_body_.size());
  write_head(&Session::drip_next_byte);
}

void Session::drip_next_byte() {
  if (raw_sent_ >= kDripBytes || raw_sent_ + 1 >= raw_body_.size()) {
    end_admission();
    net::async_write(socket_, net::buffer(raw_body_) + raw_sent_,
                     [self = shared_from_this()](ErrorCode ec, std::size_t) { self->on_written(ec); });
    return;
  }
  net::async_write(socket_, net::buffer(raw_body_.data() + raw_sent_++, 1),
                   [self = shared_from_this()](ErrorCode ec, std::size_t) {
                     if (ec) return self->close();
                     self->timer_.expires_after(kDripInterval);
                     self->timer_.async_wait([self](ErrorCode wait_ec) {
                       if (!wait_ec) self->drip_next_byte();
                     });
                   });
}

void Session::reset_midway(std::string body) {
  note_outcome(200);
  raw_body_ = std::move(body);
  prepare_head(200, kJson, raw_body_.size());
  write_head(&Session::write_half_then_abort);
}

void Session::write_half_then_abort() {
  net::async_write(socket_, net::buffer(raw_body_.data(), raw_body_.size() / 2),
                   [self = shared_from_this()](ErrorCode, std::size_t) { self->abort(); });
}

void Session::kill_client() {
  ErrorCode ec;
  const auto peer = socket_.remote_endpoint(ec);
  if (!ec && kill_peer_processes(peer) > 0) {
    note_outcome(0);
    return close();
  }
  reply_error(api_errors::peer_not_found());
}

// ---- Connection plumbing ----------------------------------------------------------------------------------

// A head written on its own, for answers whose body is written by hand: chunked when no length is given.
void Session::prepare_head(unsigned status, std::string_view content_type,
                           std::optional<std::size_t> content_length) {
  head_ = {};
  head_.result(status);
  head_.set(http::field::content_type, content_type);
  head_.keep_alive(keep_alive_);
  if (content_length) {
    head_.content_length(*content_length);
  } else {
    head_.chunked(true);
  }
}

void Session::write_head(void (Session::*next)()) {
  head_serializer_.emplace(head_);
  http::async_write_header(socket_, *head_serializer_,
                           [self = shared_from_this(), next](ErrorCode ec, std::size_t) {
                             if (ec) return self->close();
                             (self.get()->*next)();
                           });
}

// The answer's last bytes go out now: the client may read them and send its next request (on another
// connection) before this write's completion runs, so the request stops counting as in flight (and as an
// upload or download in progress) here.
void Session::end_admission() {
  admission_.reset();
  batch_activity_.reset();
  held_upload_.reset();
}

void Session::on_written(ErrorCode ec) {
  admission_.reset();
  batch_activity_.reset();
  held_upload_.reset();
  if (ec) return close();
  if (keep_alive_) return read_header();
  // Half-close, then read until the client closes: closing with unread input would send an RST that
  // can destroy our answer before the client reads it.
  ErrorCode ignored;
  socket_.shutdown(Socket::shutdown_send, ignored);
  drain_until_client_closes();
}

// Also the `hang` fault: holds the connection open, reading and ignoring, until the client gives up.
void Session::drain_until_client_closes() {
  socket_.async_read_some(net::buffer(discard_), [self = shared_from_this()](ErrorCode ec, std::size_t) {
    if (ec) return self->close();
    self->drain_until_client_closes();
  });
}

void Session::close() {
  ErrorCode ignored;
  socket_.close(ignored);
  admission_.reset();
  batch_activity_.reset();
  held_upload_.reset();
}

// Abortive close: SO_LINGER {on, 0} makes close() send an RST instead of a FIN.
void Session::abort() {
  ErrorCode ignored;
  socket_.set_option(net::socket_base::linger(true, 0), ignored);
  close();
}

void Session::note_outcome(unsigned status) {
  if (is_chat_ && status != 0) state_.stats.count_status(status);
  if (!state_.options.verbose) return;
  const auto& request = parser_->get();
  const std::string_view method = request.method_string();
  const std::string_view target = request.target();
  const std::string_view fault = fault_ ? fault_name(*fault_) : "-";
  std::fprintf(stderr, "%.*s %.*s -> %u fault=%.*s\n", static_cast<int>(method.size()), method.data(),
               static_cast<int>(target.size()), target.data(), status, static_cast<int>(fault.size()),
               fault.data());
}

}  // namespace simulator
