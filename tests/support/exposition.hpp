// Test support: a strict parser of the Prometheus text exposition format (version 0.0.4), to check
// what /metrics serves. It rejects what a scraper would reject and also what the format promises beyond
// syntax: every family has a TYPE before its samples, a family's samples are contiguous, no series
// repeats, counters are not negative, and each histogram's buckets are ascending and cumulative and end
// with le="+Inf" equal to its _count. Stricter than the format where our renderer never strays (blank
// lines, timestamps).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cbm::test {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0.0;
};

struct MetricFamily {
  std::string type;
  std::string help;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, MetricFamily> families;

  // The sample `name` with exactly `labels`, if present.
  std::optional<double> find(const std::string& name, const Labels& labels = {}) const;
  // Same, but throws std::runtime_error naming the series when it is absent.
  double value(const std::string& name, const Labels& labels = {}) const;
  // The sum over every sample of `name` whose labels include `subset` (all of them by default).
  double total(const std::string& name, const Labels& subset = {}) const;
};

// Throws std::runtime_error naming the line (1-based) and the fault.
Exposition parse_exposition(std::string_view text);

}  // namespace cbm::test
