// PrometheusText: builds one document in the Prometheus text exposition format, version 0.0.4: for
// each metric family a `# HELP` and a `# TYPE` line, then its samples, one per line,
// `name{label="value",...} value`. Label values and help text are escaped here; metric and label
// names are the caller's constants and must match [a-zA-Z_:][a-zA-Z0-9_:]* (label names without ':').
// Callers write each family's samples together, right after its family() line.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace cbm {

struct Label {
  std::string_view name;
  std::string_view value;
};

// Counts of observations per bucket: counts[i] fell at or below bounds[i] (and above bounds[i-1]);
// counts[bounds.size()] fell above the last bound. Not cumulative: the writer accumulates.
struct HistogramSnapshot {
  std::span<const double> bounds;         // ascending upper bounds
  std::span<const std::uint64_t> counts;  // bounds.size() + 1 entries
  double sum = 0.0;
};

class PrometheusText {
 public:
  // `type`: counter | gauge | histogram.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, std::initializer_list<Label> labels, double value);
  void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value);
  // name_bucket{...,le="..."} (cumulative, ending with le="+Inf"), name_sum and name_count.
  void histogram(std::string_view name, std::initializer_list<Label> labels, const HistogramSnapshot& h);

  const std::string& text() const { return out_; }

 private:
  void series(std::string_view name, std::string_view suffix, std::initializer_list<Label> labels,
              const Label* extra);
  std::string out_;
};

// A sample value as the format spells it: shortest round-trip decimal, +Inf, -Inf, NaN.
std::string format_value(double v);
// A label value inside its double quotes: backslash, double quote and line feed escaped.
std::string escape_label_value(std::string_view v);

}  // namespace cbm
