#include "latency.h"

#include <random>

#include "random.h"

namespace simulator {

std::chrono::microseconds LatencyModel::sample() const {
  using std::chrono::microseconds;
  const auto base_us = static_cast<double>(microseconds(base).count());
  switch (distribution) {
    case LatencyDistribution::kFixed:
      return base;
    case LatencyDistribution::kUniform: {
      std::uniform_real_distribution<double> uniform(base_us, static_cast<double>(microseconds(max).count()));
      return microseconds(static_cast<microseconds::rep>(uniform(thread_rng())));
    }
    case LatencyDistribution::kExponential: {
      if (base_us <= 0) return microseconds(0);
      std::exponential_distribution<double> exponential(1.0 / base_us);
      return microseconds(static_cast<microseconds::rep>(exponential(thread_rng())));
    }
  }
  return base;
}

}  // namespace simulator
