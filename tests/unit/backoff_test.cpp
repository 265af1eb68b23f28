#include "backoff.hpp"

#include <catch2/catch.hpp>
#include <climits>

using namespace std::chrono_literals;

TEST_CASE("the backoff ceiling doubles from the base and stops at the cap", "[backoff]") {
  const cbm::Backoff b{1000ms, 8000ms};
  CHECK(b.ceiling(0) == 1000ms);
  CHECK(b.ceiling(1) == 2000ms);
  CHECK(b.ceiling(2) == 4000ms);
  CHECK(b.ceiling(3) == 8000ms);
  CHECK(b.ceiling(4) == 8000ms);
  CHECK(b.ceiling(INT_MAX) == 8000ms);  // no overflow however many retries
  CHECK(b.ceiling(-1) == 1000ms);
  CHECK(cbm::Backoff{1000ms, 7000ms}.ceiling(3) == 7000ms);  // a cap that is no power of two
  CHECK(cbm::Backoff{9000ms, 8000ms}.ceiling(0) == 8000ms);  // a base above the cap
  CHECK(cbm::Backoff{0ms, 8000ms}.ceiling(INT_MAX) == 0ms);
  const std::chrono::milliseconds huge = std::chrono::milliseconds::max();
  CHECK(cbm::Backoff{huge / 3, huge}.ceiling(INT_MAX) == huge);
}

TEST_CASE("the wait is the ceiling less a jitter share of it, scaled by the draw", "[backoff]") {
  struct Case {
    double jitter;
    int retry;
    double draw;
    std::chrono::milliseconds wait;
  };
  const Case cases[] = {
      // No jitter (worker restarts): the ceiling, whatever the draw.
      {0.0, 0, 0.0, 50ms},
      {0.0, 1, 0.7, 100ms},
      {0.0, 7, 0.3, 6400ms},
      // Full jitter (task retries): uniform below the ceiling.
      {1.0, 0, 0.0, 0ms},
      {1.0, 0, 0.5, 25ms},
      {1.0, 1, 0.5, 50ms},
      {1.0, 6, 0.999, 3196ms},
      // A quarter (LangSmith deliveries): from 75% of the ceiling up.
      {0.25, 0, 0.0, 37ms},
      {0.25, 3, 0.5, 350ms},
      {0.25, 3, 0.999, 399ms},
  };
  for (const Case& c : cases) {
    INFO("jitter " << c.jitter << ", retry " << c.retry << ", draw " << c.draw);
    CHECK(cbm::Backoff{50ms, 8000ms, c.jitter}.delay(c.retry, c.draw) == c.wait);
  }
}

TEST_CASE("a draw or a jitter out of range is clamped, never a negative or a longer wait", "[backoff]") {
  CHECK(cbm::Backoff{1000ms, 8000ms, 1.0}.delay(0, -3.0) == 0ms);
  CHECK(cbm::Backoff{1000ms, 8000ms, 1.0}.delay(0, 7.0) == 1000ms);
  CHECK(cbm::Backoff{1000ms, 8000ms, 2.0}.delay(0, 0.0) == 0ms);
  CHECK(cbm::Backoff{1000ms, 8000ms, -1.0}.delay(0, 0.0) == 1000ms);
}
