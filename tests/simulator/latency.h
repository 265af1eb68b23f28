#pragma once

#include <chrono>

namespace simulator {

enum class LatencyDistribution { kFixed, kUniform, kExponential };

// The delay added before a chat request is answered (--latency-*).
struct LatencyModel {
  LatencyDistribution distribution = LatencyDistribution::kFixed;
  std::chrono::milliseconds base{0};  // fixed value, uniform lower bound, exponential mean
  std::chrono::milliseconds max{0};   // uniform upper bound; ignored by the other distributions

  // Thread-safe: draws from the calling thread's generator.
  std::chrono::microseconds sample() const;
};

}  // namespace simulator
