// The Redis client's outside-input side: the URL, the bounded reply reader, and the secret kept out of
// every message. (Talking to a real server is tested in tests/integration/fleet_test.cpp.)
#include <hiredis/hiredis.h>

#include <catch2/catch.hpp>
#include <string>
#include <variant>

#include "redis_client.hpp"

using cbm::redis::parse_redis_url;
using cbm::redis::Reply;
using cbm::redis::ReplyBounds;

TEST_CASE("a Redis URL gives host, port, database and credentials", "[redis]") {
  const auto u = parse_redis_url("redis://alice:s3cr@t@cache.internal:6380/2", nullptr);
  CHECK(u.host == "cache.internal");
  CHECK(u.port == 6380);
  CHECK(u.db == 2);
  CHECK(u.user == "alice");
  CHECK(u.password == "s3cr@t");
  CHECK(u.describe() == "redis://alice@cache.internal:6380/2");  // never the password

  const auto d = parse_redis_url("redis://localhost", nullptr);
  CHECK(d.port == 6379);
  CHECK(d.db == 0);
  CHECK(d.password.empty());
}

TEST_CASE("the Redis password may come from the environment, the one in the URL first", "[redis]") {
  CHECK(parse_redis_url("redis://h:1/0", "fromenv").password == "fromenv");
  CHECK(parse_redis_url("redis://:inurl@h:1/0", "fromenv").password == "inurl");
}

TEST_CASE("a bad Redis URL is refused naming the problem, never the password", "[redis]") {
  CHECK_THROWS_WITH(parse_redis_url("rediss://h:1/0", nullptr), Catch::Contains("TLS"));
  CHECK_THROWS_WITH(parse_redis_url("http://h:1/0", nullptr), Catch::Contains("redis://"));
  CHECK_THROWS_WITH(parse_redis_url("redis://h:99999/0", nullptr), Catch::Contains("port '99999'"));
  CHECK_THROWS_WITH(parse_redis_url("redis://h:1/x", nullptr), Catch::Contains("database 'x'"));
  try {
    parse_redis_url("redis://u:topsecret@h:notaport/0", nullptr);
    FAIL("accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("topsecret") == std::string::npos);
  }
}

namespace {
// Feeds `bytes` to a bounded reader; the copied reply, or the reader's error as a string.
std::variant<Reply, std::string> read(const std::string& bytes, const ReplyBounds& bounds) {
  redisReader* r = redisReaderCreate();
  cbm::redis::bound_reader(r, &bounds);
  redisReaderFeed(r, bytes.data(), bytes.size());
  void* raw = nullptr;
  std::variant<Reply, std::string> out = std::string("incomplete");
  if (redisReaderGetReply(r, &raw) != REDIS_OK) {
    out = std::string(r->errstr);
  } else if (raw != nullptr) {
    try {
      out = cbm::redis::copy_reply(raw, bounds);
    } catch (const cbm::redis::ProtocolError& e) {
      out = std::string(e.what());
    }
    freeReplyObject(raw);
  }
  redisReaderFree(r);
  return out;
}
}  // namespace

TEST_CASE("a reply is copied with its types", "[redis]") {
  const auto v = read("*4\r\n:42\r\n$3\r\nabc\r\n$-1\r\n+OK\r\n", ReplyBounds{});
  REQUIRE(std::holds_alternative<Reply>(v));
  const Reply& r = std::get<Reply>(v);
  REQUIRE(r.as_array().size() == 4);
  CHECK(r.at(0).as_integer() == 42);
  CHECK(r.at(1).as_string() == "abc");
  CHECK(r.at(2).is_nil());
  CHECK(r.at(3).as_string() == "OK");
  CHECK_THROWS_AS(r.at(4), cbm::redis::ProtocolError);
  CHECK_THROWS_AS(r.at(0).as_string(), cbm::redis::ProtocolError);
}

TEST_CASE("a reply over the bounds is refused before it is allocated", "[redis]") {
  ReplyBounds small;
  small.max_array = 3;
  small.max_string = 4;
  small.max_values = 5;
  small.max_bytes = 6;
  // An array announcing a billion elements fails at once, without waiting for (or allocating) them.
  CHECK(std::holds_alternative<std::string>(read("*1000000000\r\n", small)));
  CHECK(std::holds_alternative<std::string>(read("$5\r\nabcde\r\n", small)));
  CHECK(std::holds_alternative<std::string>(read("*3\r\n*3\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n", small)));
  CHECK(std::holds_alternative<std::string>(read("*2\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n", small)));
  CHECK(std::holds_alternative<Reply>(read("*2\r\n$3\r\nabc\r\n$3\r\nabc\r\n", small)));
  // The whole-reply bounds hold while the reader builds the reply (a hostile server cannot make it
  // build a huge tree of small values first): the reader's own error, not the copy's.
  for (const char* over : {"*3\r\n*3\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n", "*2\r\n*2\r\n$-1\r\n$-1\r\n*2\r\n$-1\r\n$-1\r\n",
                           "*2\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n"}) {
    const auto v = read(over, small);
    REQUIRE(std::holds_alternative<std::string>(v));
    CHECK_THAT(std::get<std::string>(v), !Catch::Contains("bound"));
  }
  // Each reply is counted from its own start: three small replies in a row are each within bounds.
  CHECK(std::holds_alternative<Reply>(read("*2\r\n$3\r\nabc\r\n$3\r\nabc\r\n", small)));
  CHECK(std::holds_alternative<Reply>(read("*2\r\n$3\r\nabc\r\n$3\r\nabc\r\n", small)));
  // Nesting deeper than hiredis' 7 levels is refused by the reader itself.
  CHECK(std::holds_alternative<std::string>(read("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
                                                 ReplyBounds{})));
}

TEST_CASE("a Redis that cannot be reached gives an error without the password", "[redis]") {
  auto url = parse_redis_url("redis://:hunter2secret@127.0.0.1:1/0", nullptr);
  cbm::redis::Client::Options o;
  o.timeouts.connect = std::chrono::milliseconds(200);
  cbm::redis::Client c(url, o);
  CHECK_FALSE(c.try_connect());
  CHECK(c.last_error().find("hunter2secret") == std::string::npos);
  CHECK(c.last_error().find("127.0.0.1:1") != std::string::npos);
  // The backoff holds the next attempt back: a second try at once does not connect either, and
  // a command says Redis is unavailable.
  CHECK_FALSE(c.try_connect());
  CHECK_THROWS_AS(c.command({"PING"}), cbm::redis::ConnectionError);
}
