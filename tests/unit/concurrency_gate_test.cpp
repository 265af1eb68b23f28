#include "concurrency_gate.hpp"

#include <catch2/catch.hpp>

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

const ConcurrencyGate::Clock::time_point t0{};  // the gate reads no clock: time is what the test says

}  // namespace

TEST_CASE("the gate admits up to its limit, only a release frees a place", "[gate]") {
  ConcurrencyGate gate(2, {}, 1, t0);
  auto a = gate.try_acquire(t0);
  auto b = gate.try_acquire(t0);
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(gate.try_acquire(t0 + 1h));
  CHECK_FALSE(gate.next_admission(t0));  // no time frees a place: a release does
  gate.release(*a, succeeded(), t0 + 10ms);
  CHECK(gate.try_acquire(t0 + 10ms));
  CHECK(gate.in_flight() == 2);
}

TEST_CASE("a rate cap holds the next attempt back until its time, and says when", "[gate]") {
  ConcurrencyGate gate(8, {.requests_per_minute = 60, .tokens_per_minute = 0}, 1, t0);  // one a second
  const auto first = gate.next_admission(t0);
  REQUIRE(first);
  auto permit = gate.try_acquire(*first);
  REQUIRE(permit);
  const auto next = gate.next_admission(*first);
  REQUIRE(next);
  CHECK(*next > *first + 900ms);
  CHECK(*next <= *first + 1s);
  CHECK_FALSE(gate.try_acquire(*next - 10ms));
  CHECK(gate.try_acquire(*next));
}

TEST_CASE("refusals from the platform lower the gate's limit, releases report the move", "[gate]") {
  ConcurrencyGate gate(10, {}, 1, t0);
  std::vector<ConcurrencyGate::Permit> permits;
  for (int i = 0; i < 10; ++i) permits.push_back(*gate.try_acquire(t0));
  const auto change = gate.release(permits.back(), refused_1302(), t0 + 5ms);
  permits.pop_back();
  REQUIRE(change);
  CHECK(change->from == 10);
  CHECK(change->to < 10);
  CHECK(gate.limit() == change->to);
  CHECK_FALSE(gate.try_acquire(t0 + 5ms));  // 9 in flight, limit below that
}
