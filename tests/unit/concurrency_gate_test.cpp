#include "concurrency_gate.hpp"

#include <catch2/catch.hpp>
#include <future>
#include <thread>

using namespace std::chrono_literals;
using cbm::ConcurrencyGate;

namespace {

cbm::AttemptOutcome refused_1302() {
  cbm::AttemptOutcome o;
  cbm::ApiError e;
  e.kind = cbm::ErrorKind::api;
  e.code = "1302";
  o.error = e;
  return o;
}

cbm::AttemptOutcome succeeded() {
  cbm::AttemptOutcome o;
  o.steps.emplace_back();
  o.steps.back().latency = 10ms;
  return o;
}

}  // namespace

TEST_CASE("the gate admits up to its limit; a release lets a blocked thread in", "[gate]") {
  ConcurrencyGate gate(2, {}, 1);
  auto a = gate.try_acquire(ConcurrencyGate::Clock::now());
  auto b = gate.acquire();
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(gate.try_acquire(ConcurrencyGate::Clock::now()));
  CHECK_FALSE(gate.next_admission(ConcurrencyGate::Clock::now()));  // only a release frees a place
  auto blocked = std::async(std::launch::async, [&] { return gate.acquire().has_value(); });
  CHECK(blocked.wait_for(100ms) == std::future_status::timeout);
  gate.release(*a, succeeded());
  REQUIRE(blocked.wait_for(10s) == std::future_status::ready);
  CHECK(blocked.get());
  CHECK(gate.in_flight() == 2);
}

TEST_CASE("closing the gate wakes every waiting thread and refuses later ones", "[gate]") {
  ConcurrencyGate gate(1, {}, 1);
  REQUIRE(gate.acquire());
  std::vector<std::future<bool>> waiting;
  for (int i = 0; i < 4; ++i) {
    waiting.push_back(std::async(std::launch::async, [&] { return gate.acquire().has_value(); }));
  }
  gate.close();
  for (auto& w : waiting) {
    REQUIRE(w.wait_for(10s) == std::future_status::ready);
    CHECK_FALSE(w.get());
  }
  CHECK_FALSE(gate.acquire());
}

TEST_CASE("a thread held back by a rate cap is also woken by close", "[gate]") {
  ConcurrencyGate gate(8, {.requests_per_minute = 1, .tokens_per_minute = 0}, 1);  // the next in a minute
  REQUIRE(gate.acquire());
  const auto next = gate.next_admission(ConcurrencyGate::Clock::now());
  REQUIRE(next);
  CHECK(*next > ConcurrencyGate::Clock::now() + 50s);
  auto waiting = std::async(std::launch::async, [&] { return gate.acquire().has_value(); });
  CHECK(waiting.wait_for(100ms) == std::future_status::timeout);
  gate.close();
  REQUIRE(waiting.wait_for(10s) == std::future_status::ready);
  CHECK_FALSE(waiting.get());
}

TEST_CASE("refusals from the platform lower the gate's limit; releases report the move", "[gate]") {
  ConcurrencyGate gate(10, {}, 1);
  std::vector<ConcurrencyGate::Permit> permits;
  for (int i = 0; i < 10; ++i) permits.push_back(*gate.acquire());
  const auto change = gate.release(permits.back(), refused_1302());
  permits.pop_back();
  REQUIRE(change);
  CHECK(change->from == 10);
  CHECK(change->to < 10);
  CHECK(gate.limit() == change->to);
  CHECK_FALSE(gate.try_acquire(ConcurrencyGate::Clock::now()));  // 9 in flight, limit below that
}
