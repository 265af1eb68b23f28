// The exit status: one rule for a run, a batch the service answers, and the service.
#include <catch2/catch.hpp>

#include "exit_status.hpp"

TEST_CASE("an abort outranks a stop by signal, which outranks failed tasks", "[exit]") {
  using cbm::RunEnding;
  CHECK(cbm::exit_status_of(RunEnding{false, 0, true}) == 0);
  CHECK(cbm::exit_status_of(RunEnding{false, 0, false}) == 1);
  CHECK(cbm::exit_status_of(RunEnding{false, 15, false}) == 143);
  CHECK(cbm::exit_status_of(RunEnding{true, 15, false}) == 3);
}
