#include "restart_governor.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using cbm::RestartGovernor;

namespace {
const RestartGovernor::Clock::time_point t0{std::chrono::hours(1)};
}

TEST_CASE("workers dying faster than the limit while nothing finishes make the pool give up",
          "[governor]") {
  RestartGovernor g({.max_restarts = 3, .period = 10s});
  for (int i = 0; i < 3; ++i) CHECK_FALSE(g.on_death(t0 + i * 100ms));
  const auto reason = g.on_death(t0 + 300ms);
  REQUIRE(reason);
  CHECK_THAT(*reason, Catch::Contains("keep crashing") && Catch::Contains("--max-restarts 3"));
}

TEST_CASE("workers killed from outside while tasks keep finishing are restarted without limit",
          "[governor]") {
  RestartGovernor g({.max_restarts = 3, .period = 10s});
  for (int i = 0; i < 1000; ++i) {
    const auto now = t0 + i * 30ms;
    g.on_progress(now);
    REQUIRE_FALSE(g.on_death(now));
  }
}

TEST_CASE("progress older than the period does not excuse a crash loop", "[governor]") {
  RestartGovernor g({.max_restarts = 2, .period = 1s});
  g.on_progress(t0);
  CHECK_FALSE(g.on_death(t0 + 2s));
  CHECK_FALSE(g.on_death(t0 + 2100ms));
  CHECK(g.on_death(t0 + 2200ms));
}

TEST_CASE("deaths spread wider than the period never add up", "[governor]") {
  RestartGovernor g({.max_restarts = 2, .period = 1s});
  for (int i = 0; i < 50; ++i) REQUIRE_FALSE(g.on_death(t0 + i * 600ms));
}

TEST_CASE("restart backoff doubles per consecutive death, from 50 ms to a 5 s cap", "[governor]") {
  CHECK(RestartGovernor::backoff(1) == 50ms);
  CHECK(RestartGovernor::backoff(2) == 100ms);
  CHECK(RestartGovernor::backoff(3) == 200ms);
  CHECK(RestartGovernor::backoff(20) == 5s);
}
