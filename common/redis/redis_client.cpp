#include "redis_client.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <thread>

#include "secret_scrubber.hpp"

namespace cbm::redis {

namespace {

[[noreturn]] void bad_url(const std::string& what) {
  std::string m = "invalid Redis URL: ";
  m += what;
  m += " (expected redis://[user:password@]host:port/db)";
  throw std::invalid_argument(m);
}

int parse_int(std::string_view text, int lo, int hi, const char* what) {
  int v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi) {
    std::string m = what;
    m += " '";
    m += text;
    m += "' is not a number from ";
    m += std::to_string(lo);
    m += " to ";
    m += std::to_string(hi);
    bad_url(m);
  }
  return v;
}

}  // namespace

std::string RedisUrl::describe() const {
  std::string s = "redis://";
  if (!user.empty()) {
    s += user;
    s += '@';
  }
  s += host;
  s += ':';
  s += std::to_string(port);
  s += '/';
  s += std::to_string(db);
  return s;
}

RedisUrl parse_redis_url(std::string_view url, const char* env_password) {
  RedisUrl out;
  if (url.starts_with("rediss://")) {
    throw std::invalid_argument(
        "rediss:// (TLS) is not supported: this build's hiredis 0.14 has no TLS; reach Redis over a "
        "private network or a TLS sidecar such as stunnel and give its local redis:// address "
        "(docs/fleet.md, \"TLS\")");
  }
  constexpr std::string_view scheme = "redis://";
  if (!url.starts_with(scheme)) bad_url("it does not start with redis://");
  std::string_view rest = url.substr(scheme.size());
  // Credentials: everything before the last '@' (a password may hold '@'; a host may not).
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (const auto colon = cred.find(':'); colon != std::string_view::npos) {
      out.user = std::string(cred.substr(0, colon));
      out.password = std::string(cred.substr(colon + 1));
    } else {
      out.password = std::string(cred);  // redis://password@host (the old single-password form)
    }
  }
  std::string_view hostport = rest;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) out.db = parse_int(db, 0, 1 << 20, "database");
  }
  if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    out.port = parse_int(hostport.substr(colon + 1), 1, 65535, "port");
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) bad_url("no host");
  for (const char c : hostport) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) {
      bad_url("the host holds a character other than letters, digits, '.', '-' or '_'");
    }
  }
  out.host = std::string(hostport);
  if (out.password.empty() && env_password != nullptr) out.password = env_password;
  return out;
}

long long Reply::as_integer() const {
  if (type != Type::integer) throw ProtocolError("Redis answered something other than an integer");
  return integer;
}
const std::string& Reply::as_string() const {
  if (!is_string()) throw ProtocolError("Redis answered something other than a string");
  return str;
}
const std::vector<Reply>& Reply::as_array() const {
  if (type != Type::array) throw ProtocolError("Redis answered something other than an array");
  return elements;
}
const Reply& Reply::at(std::size_t i) const {
  const auto& a = as_array();
  if (i >= a.size()) throw ProtocolError("Redis answered an array shorter than expected");
  return a[i];
}

// The bounded reader: hiredis' own object functions, with a length check first.
namespace {

redisReplyObjectFunctions g_default_fns{};
redisReplyObjectFunctions g_bounded_fns{};

// Counts one value of `bytes` string bytes of the reply being read (its first value starts the count);
// false when that takes the reply over a bound.
bool within_bounds(const redisReadTask* task, std::size_t bytes) {
  const auto* b = static_cast<const ReplyBounds*>(task->privdata);
  if (b == nullptr) return true;
  if (task->parent == nullptr) b->read_values = b->read_bytes = 0;
  b->read_bytes += bytes;
  return ++b->read_values <= b->max_values && b->read_bytes <= b->max_bytes;
}

void* bounded_string(const redisReadTask* task, char* str, size_t len) {
  const auto* b = static_cast<const ReplyBounds*>(task->privdata);
  if (b != nullptr && len > b->max_string) return nullptr;  // the reader fails: "Out of memory"
  if (!within_bounds(task, len)) return nullptr;
  return g_default_fns.createString(task, str, len);
}
void* bounded_array(const redisReadTask* task, int elements) {
  const auto* b = static_cast<const ReplyBounds*>(task->privdata);
  if (elements < 0 || (b != nullptr && static_cast<std::size_t>(elements) > b->max_array)) return nullptr;
  if (!within_bounds(task, 0)) return nullptr;
  return g_default_fns.createArray(task, elements);
}
void* bounded_integer(const redisReadTask* task, long long value) {
  if (!within_bounds(task, 0)) return nullptr;
  return g_default_fns.createInteger(task, value);
}
void* bounded_nil(const redisReadTask* task) {
  if (!within_bounds(task, 0)) return nullptr;
  return g_default_fns.createNil(task);
}

void install_functions() {
  static const bool once = [] {
    redisReader* r = redisReaderCreate();
    g_default_fns = *r->fn;
    redisReaderFree(r);
    g_bounded_fns = g_default_fns;
    g_bounded_fns.createString = bounded_string;
    g_bounded_fns.createArray = bounded_array;
    g_bounded_fns.createInteger = bounded_integer;
    g_bounded_fns.createNil = bounded_nil;
    return true;
  }();
  (void)once;
}

struct CopyBudget {
  const ReplyBounds& bounds;
  std::size_t values = 0;
  std::size_t bytes = 0;
};

Reply copy_node(const redisReply* r, CopyBudget& budget) {
  if (++budget.values > budget.bounds.max_values) throw ProtocolError("a Redis reply over the value bound");
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_NIL:
      out.type = Reply::Type::nil;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STRING:
      out.type = r->type == REDIS_REPLY_STRING   ? Reply::Type::string
                 : r->type == REDIS_REPLY_STATUS ? Reply::Type::status
                                                 : Reply::Type::error;
      budget.bytes += static_cast<std::size_t>(r->len);
      if (budget.bytes > budget.bounds.max_bytes) throw ProtocolError("a Redis reply over the byte bound");
      out.str.assign(r->str, static_cast<std::size_t>(r->len));
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(std::min<std::size_t>(r->elements, 4096));
      for (std::size_t i = 0; i < r->elements; ++i) {
        if (r->element[i] == nullptr) throw ProtocolError("a Redis reply with a missing element");
        out.elements.push_back(copy_node(r->element[i], budget));
      }
      break;
    default:
      throw ProtocolError("a Redis reply of an unknown type");
  }
  return out;
}

}  // namespace

void bound_reader(redisReader* reader, const ReplyBounds* bounds) {
  install_functions();
  reader->fn = &g_bounded_fns;
  reader->privdata = const_cast<ReplyBounds*>(bounds);
}

Reply copy_reply(const void* hiredis_reply, const ReplyBounds& bounds) {
  // Nesting: hiredis' reader refuses more than 7 levels, so this recursion is at most that deep.
  CopyBudget budget{bounds};
  return copy_node(static_cast<const redisReply*>(hiredis_reply), budget);
}

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
  return tv;
}

struct ReplyFree {
  void operator()(void* r) const { freeReplyObject(r); }
};

}  // namespace

Connection::Connection(const RedisUrl& url, Timeouts timeouts, ReplyBounds bounds)
    : bounds_(std::make_unique<ReplyBounds>(bounds)), password_(url.password) {
  ctx_ = redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(timeouts.connect));
  if (ctx_ == nullptr) throw ConnectionError("cannot connect to " + url.describe() + ": out of memory");
  if (ctx_->err != 0) {
    std::string m = "cannot connect to ";
    m += url.describe();
    m += ": ";
    m += ctx_->errstr;
    redisFree(ctx_);
    ctx_ = nullptr;
    throw ConnectionError(scrub(std::move(m)));
  }
  redisSetTimeout(ctx_, to_timeval(timeouts.command));
  bound_reader(ctx_->reader, bounds_.get());
  try {
    if (!url.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!url.user.empty()) auth.push_back(url.user);
      auth.push_back(url.password);
      const Reply r = command(auth);
      if (r.is_error()) {
        std::string m = "Redis at ";
        m += url.describe();
        m += " refused the credentials: ";
        m += r.str;
        throw ConnectionError(scrub(std::move(m)));
      }
    }
    if (url.db != 0) {
      const Reply r = command({"SELECT", std::to_string(url.db)});
      if (r.is_error()) {
        std::string m = "Redis at ";
        m += url.describe();
        m += " refused the database: ";
        m += r.str;
        throw ConnectionError(scrub(std::move(m)));
      }
    }
  } catch (...) {
    redisFree(ctx_);
    ctx_ = nullptr;
    throw;
  }
}

Connection::~Connection() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

std::string Connection::scrub(std::string text) const { return scrub_secret(std::move(text), password_); }

Reply Connection::read_one() {
  void* raw = nullptr;
  if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
    broken_ = true;
    std::string m = "Redis connection failed: ";
    m += ctx_->errstr[0] != '\0' ? ctx_->errstr : "no reply";
    if (ctx_->err == REDIS_ERR_OOM) m += " (or a reply over the client's bounds)";
    throw ConnectionError(scrub(std::move(m)));
  }
  std::unique_ptr<void, ReplyFree> owned(raw);
  try {
    Reply r = copy_reply(raw, *bounds_);
    if (r.is_error()) r.str = scrub(std::move(r.str));
    return r;
  } catch (const ProtocolError&) {
    broken_ = true;
    throw;
  }
}

namespace {
void append(redisContext* ctx, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
    throw ConnectionError("Redis command could not be formatted");
  }
}
}  // namespace

Reply Connection::command(const std::vector<std::string>& args) {
  if (broken_) throw ConnectionError("Redis connection is broken");
  append(ctx_, args);
  return read_one();
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  if (broken_) throw ConnectionError("Redis connection is broken");
  for (const auto& c : commands) append(ctx_, c);
  std::vector<Reply> out;
  out.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) out.push_back(read_one());
  return out;
}

Client::Client(RedisUrl url, Options options)
    : url_(std::move(url)), options_(std::move(options)), rng_(std::random_device{}()) {
  if (!options_.clock) options_.clock = [] { return std::chrono::steady_clock::now(); };
}

Client::~Client() = default;

bool Client::try_connect() {
  if (conn_) return true;
  const auto now = options_.clock();
  if (now < next_attempt_) return false;
  try {
    conn_ = std::make_unique<Connection>(url_, options_.timeouts, options_.bounds);
    failures_ = 0;
    last_error_.clear();
    return true;
  } catch (const std::exception& e) {
    last_error_ = scrub_secret(e.what(), url_.password);
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    next_attempt_ = now + options_.backoff.delay(failures_, u);
    if (failures_ < 64) ++failures_;
    return false;
  }
}

void Client::connect_within(std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (!try_connect()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      std::string m = "Redis at ";
      m += url_.describe();
      m += " is unavailable (gave up after ";
      m += std::to_string(budget.count());
      m += " ms): ";
      m += last_error_;
      throw ConnectionError(m);
    }
    const auto wait = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::max(next_attempt_ - options_.clock(), std::chrono::steady_clock::duration(0))));
    std::this_thread::sleep_for(std::max(wait, std::chrono::milliseconds(1)));
  }
}

void Client::drop(const std::string& why) {
  conn_.reset();
  last_error_ = why;
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  next_attempt_ = options_.clock() + options_.backoff.delay(failures_, u);
  if (failures_ < 64) ++failures_;
}

Connection& Client::live() {
  if (!try_connect()) {
    std::string m = "Redis at ";
    m += url_.describe();
    m += " is unavailable: ";
    m += last_error_;
    throw ConnectionError(m);
  }
  return *conn_;
}

template <typename Fn>
auto Client::on_live(Fn&& fn) {
  Connection& c = live();
  try {
    return fn(c);
  } catch (const ConnectionError& e) {
    drop(e.what());
    throw;
  } catch (const ProtocolError& e) {
    drop(e.what());
    throw;
  }
}

Reply Client::command(const std::vector<std::string>& args) {
  return on_live([&](Connection& c) { return c.command(args); });
}

Reply Client::command_ok(const std::vector<std::string>& args) {
  Reply r = command(args);
  if (r.is_error()) {
    std::string m = "Redis ";
    m += args.empty() ? std::string() : args.front();
    m += " failed: ";
    m += r.str;
    throw ServerError(m);
  }
  return r;
}

std::vector<Reply> Client::pipeline(const std::vector<std::vector<std::string>>& commands) {
  return on_live([&](Connection& c) { return c.pipeline(commands); });
}

Reply Client::eval(Script& script, const std::vector<std::string>& keys, const std::vector<std::string>& args) {
  auto load = [&] {
    script.sha = command_ok({"SCRIPT", "LOAD", script.source}).as_string();
  };
  if (script.sha.empty()) load();
  auto run = [&] {
    std::vector<std::string> argv{"EVALSHA", script.sha, std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return command(argv);
  };
  Reply r = run();
  if (r.is_error() && r.str.starts_with("NOSCRIPT")) {
    load();  // a restarted (or flushed) Redis forgot the script
    r = run();
  }
  if (r.is_error()) throw ServerError("Redis script failed: " + r.str);
  return r;
}

}  // namespace cbm::redis
