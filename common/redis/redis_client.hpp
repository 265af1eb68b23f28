// The Redis client of fleets (docs/fleet.md): a small RAII wrapper over hiredis 0.14 (blocking API).
//
//  - RedisUrl: `redis://[user:password@]host:port/db`; the password may come from CBM_REDIS_PASSWORD
//    instead (so it is never in argv). It is never in an error message or a log line: describe()
//    prints the URL without credentials, and every error text passes through scrub_secret.
//    `rediss://` is refused: Debian's hiredis 0.14 has no TLS (docs/fleet.md: a TLS sidecar or a
//    private network).
//  - Reply: an owned, bounded copy of one reply. Redis replies are outside input: the hiredis reader is
//    given limits (an array's length, a string's length; its own nesting limit is 7 levels) and the
//    copy caps the whole reply's values and bytes (ReplyBounds), so a hostile or broken server cannot
//    make the client allocate without bound.
//  - Connection: one connected context with connect and command timeouts, AUTH and SELECT done.
//  - Client: a Connection that reconnects. A failed connection (or a command that failed on I/O) is
//    dropped; the next call reconnects, no earlier than the project's one backoff rule allows
//    (common/protocol/backoff.hpp), so a node polling a Redis that is down does not hammer it.
//  - Script: a Lua script run by EVALSHA, loaded again on NOSCRIPT (a restarted Redis forgot it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backoff.hpp"

struct redisContext;
struct redisReader;

namespace cbm::redis {

struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;      // empty: AUTH with the password alone (the default user)
  std::string password;  // empty: no AUTH
  // "redis://host:port/db" (and "user@" when there is a user): never the password.
  std::string describe() const;
};

// Parses `url`; `env_password` (CBM_REDIS_PASSWORD, may be null or empty) is used when the URL has no
// password. Throws std::invalid_argument naming what is wrong, never quoting the password.
RedisUrl parse_redis_url(std::string_view url, const char* env_password);

// What a reply may hold. A reply over a bound is refused as a protocol error (the connection dropped).
struct ReplyBounds {
  std::size_t max_array = 1'000'000;          // elements of one array
  std::size_t max_string = 64u << 20;         // bytes of one string
  std::size_t max_values = 4'000'000;         // values in the whole reply
  std::size_t max_bytes = 256u << 20;         // string bytes in the whole reply
  // bound_reader's running count of the reply being read (not settings): the whole-reply bounds hold
  // while hiredis builds it, not only when it is copied.
  mutable std::size_t read_values = 0;
  mutable std::size_t read_bytes = 0;
};

struct Reply {
  enum class Type { nil, status, error, integer, string, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string str;  // status, error or string
  std::vector<Reply> elements;

  bool is_nil() const { return type == Type::nil; }
  bool is_error() const { return type == Type::error; }
  bool is_array() const { return type == Type::array; }
  bool is_string() const { return type == Type::string || type == Type::status; }
  // Typed access; each throws ProtocolError (the server answered something else) when the type differs.
  long long as_integer() const;
  const std::string& as_string() const;
  const std::vector<Reply>& as_array() const;
  // Element i of an array, or ProtocolError.
  const Reply& at(std::size_t i) const;
};

// The server is unreachable, a command timed out, the connection broke: try again later.
class ConnectionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The server answered with an error reply ("-ERR ...", "-NOSCRIPT ...").
class ServerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The reply was not what the command returns, or over a bound.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Installs the bounded object functions on a hiredis reader (the one of a context, or one made for
// the fuzz target): arrays and strings over `bounds` fail the read (hiredis reports "Out of memory").
// `bounds` must outlive the reader.
void bound_reader(redisReader* reader, const ReplyBounds* bounds);
// The owned copy of a reply the reader returned (its objects are hiredis' redisReply), or
// ProtocolError over a whole-reply bound.
Reply copy_reply(const void* hiredis_reply, const ReplyBounds& bounds);

struct Timeouts {
  std::chrono::milliseconds connect{2000};
  std::chrono::milliseconds command{5000};
};

class Connection {
 public:
  // Connects, AUTHs and SELECTs; ConnectionError when it cannot (the server's AUTH error included:
  // the text never quotes the password).
  Connection(const RedisUrl& url, Timeouts timeouts, ReplyBounds bounds = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One command, binary-safe arguments. An error reply is returned as a Reply of type error
  // (command_ok throws it as ServerError); ConnectionError on I/O or timeout, after which this
  // connection is broken() and must not be used.
  Reply command(const std::vector<std::string>& args);
  // Several commands in one round trip; the replies in order.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  bool broken() const { return broken_; }

 private:
  Reply read_one();
  std::string scrub(std::string text) const;

  redisContext* ctx_ = nullptr;
  std::unique_ptr<ReplyBounds> bounds_;  // the reader points at it
  std::string password_;
  bool broken_ = false;
};

// A Lua script: its text and SHA1 (computed by SCRIPT LOAD the first time).
struct Script {
  std::string source;
  std::string sha;  // filled on first load
};

class Client {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  struct Options {
    Timeouts timeouts;
    ReplyBounds bounds;
    // Between reconnection attempts: wait n is Backoff::delay(n, u) (defaults: 100 ms doubling to 5 s,
    // a quarter of it jittered).
    Backoff backoff{std::chrono::milliseconds(100), std::chrono::milliseconds(5000), 0.25};
    Clock clock;  // steady_clock::now when empty
  };
  Client(RedisUrl url, Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects when not connected and the backoff allows; true when connected now. Never throws.
  bool try_connect();
  // Waits (sleeping between attempts as the backoff says) until connected or `budget` passed;
  // ConnectionError naming the URL (no credentials) and the last error when it did not connect.
  void connect_within(std::chrono::milliseconds budget);
  bool connected() const { return conn_ != nullptr; }
  // The last connection error ("" when none): for a status line.
  const std::string& last_error() const { return last_error_; }

  // A command; ConnectionError when not connected (and the backoff says not yet) or on I/O failure
  // (the connection is dropped; a later call reconnects). Error replies are returned as is.
  Reply command(const std::vector<std::string>& args);
  // As command(), but an error reply throws ServerError with its text.
  Reply command_ok(const std::vector<std::string>& args);
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  // EVALSHA script keys args; on NOSCRIPT it loads the script (SCRIPT LOAD) and runs it again.
  // An error reply of the script itself throws ServerError.
  Reply eval(Script& script, const std::vector<std::string>& keys, const std::vector<std::string>& args);

  const RedisUrl& url() const { return url_; }

 private:
  Connection& live();
  void drop(const std::string& why);
  // `fn` on the live connection; a connection that failed mid-exchange is dropped (reconnected later).
  template <typename Fn>
  auto on_live(Fn&& fn);

  RedisUrl url_;
  Options options_;
  std::unique_ptr<Connection> conn_;
  int failures_ = 0;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::string last_error_;
  std::minstd_rand rng_;
};

}  // namespace cbm::redis
