#pragma once

#include <random>

namespace simulator {

// One generator per io thread: draws on the hot path must not contend on a lock.
inline std::mt19937_64& thread_rng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

}  // namespace simulator
