#include "rate_limit.hpp"

#include <catch2/catch.hpp>

#include "token_bucket.hpp"

using namespace std::chrono_literals;
using cbm::RateLimit;
using cbm::TokenBucket;
using Clock = TokenBucket::Clock;

namespace {

const Clock::time_point t0 = Clock::time_point{} + 1000h;  // a made-up clock

// Takes one unit whenever the bucket allows, as a saturated dispatcher would, until `end`; returns the
// times of the takes.
std::vector<Clock::time_point> saturate(TokenBucket& b, Clock::time_point start, Clock::time_point end) {
  std::vector<Clock::time_point> takes;
  for (auto now = start; now < end; now += b.wait(now)) {
    REQUIRE(b.wait(now) == Clock::duration::zero());
    b.take(1, now);
    takes.push_back(now);
  }
  return takes;
}

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

std::size_t most_in_any_window(const std::vector<Clock::time_point>& takes, Clock::duration window) {
  std::size_t most = 0;
  for (std::size_t i = 0; i < takes.size(); ++i) {
    std::size_t n = 0;
    for (std::size_t j = i; j < takes.size() && takes[j] < takes[i] + window; ++j) ++n;
    most = std::max(most, n);
  }
  return most;
}

cbm::AttemptOutcome outcome_with(std::vector<std::int64_t> tokens_per_step, bool ok = true) {
  cbm::AttemptOutcome o;
  for (auto t : tokens_per_step) {
    cbm::StepRecord step;
    step.usage.total_tokens = t;
    o.steps.push_back(step);
  }
  if (!ok) o.error = cbm::ApiError{};
  return o;
}

}  // namespace

TEST_CASE("a new bucket lets one take through at once, then paces: no first-minute burst", "[rate]") {
  TokenBucket b(60, t0);  // one a second
  CHECK(b.wait(t0) == Clock::duration::zero());
  b.take(1, t0);
  CHECK(ms(b.wait(t0)) == Approx(1000));
  CHECK(ms(b.wait(t0 + 400ms)) == Approx(600));
  CHECK(b.wait(t0 + 1s) == Clock::duration::zero());

  TokenBucket saturated(300, t0);  // 5 a second
  const auto takes = saturate(saturated, t0, t0 + 60s);
  CHECK(takes.size() == 300);  // the first minute: the cap, not the cap plus a bucketful
  CHECK(most_in_any_window(takes, 1s) == 5);
  CHECK(most_in_any_window(takes, 10s) == 50);
}

TEST_CASE("a bucket refills at its rate and saves nothing up while idle", "[rate]") {
  TokenBucket b(120, t0);  // two a second
  b.take(1, t0);
  b.take(1, t0);  // a take may exceed what is available: the debt is repaid before the next
  CHECK(b.debt(t0) == Approx(2.0));
  CHECK(b.debt(t0 + 500ms) == Approx(1.0));
  CHECK(ms(b.wait(t0 + 500ms)) == Approx(500));
  // An hour of idleness, then a saturated minute: still no more than the cap (plus the first take).
  const auto later = t0 + 1h;
  CHECK(b.debt(later) == 0.0);
  const auto takes = saturate(b, later, later + 60s);
  CHECK(takes.size() == 120);
  CHECK(most_in_any_window(takes, 10s) == 20);
}

TEST_CASE("a cost larger than the bucket's minute goes alone and is repaid before the next take", "[rate]") {
  TokenBucket b(1000, t0);
  b.take(5000, t0);  // five minutes' worth
  CHECK(ms(b.wait(t0)) == Approx(300000));
  CHECK(ms(b.wait(t0 + 299s)) == Approx(1000));
  CHECK(b.wait(t0 + 300s) == Clock::duration::zero());
}

TEST_CASE("adjusting a take by what was really used deepens or repays the debt, never past zero", "[rate]") {
  TokenBucket b(600, t0);  // 10 a second
  b.take(100, t0);
  CHECK(ms(b.wait(t0)) == Approx(10000));
  b.adjust(+50, t0);  // used 150
  CHECK(ms(b.wait(t0)) == Approx(15000));
  b.adjust(-120, t0 + 1s);  // used 30 in all: 30 - 10 repaid = 20 left
  CHECK(b.debt(t0 + 1s) == Approx(20.0));
  b.adjust(-1000, t0 + 1s);  // a refund larger than the debt does not become a credit
  CHECK(b.debt(t0 + 1s) == 0.0);
  b.take(10, t0 + 1s);
  CHECK(ms(b.wait(t0 + 1s)) == Approx(1000));
}

TEST_CASE("an attempt reserves its requests and an estimate of its tokens, settled from usage", "[rate]") {
  RateLimit r({.requests_per_minute = 120, .tokens_per_minute = 60000}, 2, t0);
  CHECK(r.wait(t0) == Clock::duration::zero());
  CHECK(r.tokens_per_attempt() == Approx(2 * RateLimit::kTokensPerRequestGuess));
  const auto first = r.reserve(t0);
  CHECK(first.requests == 2.0);
  CHECK(first.tokens == Approx(2000.0));
  // 2 requests at 2 a second: 1 s; 2,000 tokens at 1,000 a second: 2 s. The stricter cap decides.
  CHECK(ms(r.wait(t0)) == Approx(2000));

  // The attempt really used 500 tokens: the refund lets the next one go once the requests allow.
  r.settle(first, outcome_with({200, 300}), t0 + 100ms);
  CHECK(ms(r.wait(t0 + 100ms)) == Approx(900));
  CHECK(r.tokens_per_attempt() == Approx(500.0));  // the estimate follows what attempts really cost
  const auto second = r.reserve(t0 + 1s);
  CHECK(second.tokens == Approx(500.0));
  // It used 4,500 (more than reserved): the bucket goes into debt for the difference.
  r.settle(second, outcome_with({1500, 3000}), t0 + 1s);
  CHECK(ms(r.wait(t0 + 1s)) == Approx(4500));
  CHECK(r.tokens_per_attempt() == Approx(2500.0));
}

TEST_CASE("a rejected request is refunded, an attempt without a known outcome is not", "[rate]") {
  RateLimit r({.requests_per_minute = 60, .tokens_per_minute = 0}, 2, t0);
  const auto a = r.reserve(t0);
  CHECK(ms(r.wait(t0)) == Approx(2000));
  r.settle(a, outcome_with({0}, false), t0);  // refused at the first step: one request was sent
  CHECK(ms(r.wait(t0)) == Approx(1000));
  CHECK(r.tokens_per_attempt() == Approx(2000.0));  // failures do not teach the estimate

  const auto b = r.reserve(t0 + 1s);
  r.settle(b, outcome_with({}, false), t0 + 1s);  // a worker's crash: no steps to tell what was sent
  CHECK(ms(r.wait(t0 + 1s)) == Approx(2000));
}

TEST_CASE("no caps, no waits", "[rate]") {
  RateLimit r({}, 2, t0);
  for (int i = 0; i < 1000; ++i) r.reserve(t0);
  CHECK(r.wait(t0) == Clock::duration::zero());
}
