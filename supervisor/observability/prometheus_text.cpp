#include "prometheus_text.hpp"

#include <charconv>
#include <cmath>

namespace cbm {

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  // In help text only backslash and line feed are escaped.
  for (const char c : help) {
    if (c == '\\') {
      out_ += "\\\\";
    } else if (c == '\n') {
      out_ += "\\n";
    } else {
      out_ += c;
    }
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void PrometheusText::series(std::string_view name, std::string_view suffix,
                            std::initializer_list<Label> labels, const Label* extra) {
  out_ += name;
  out_ += suffix;
  if (labels.size() == 0 && extra == nullptr) {
    out_ += ' ';
    return;
  }
  char sep = '{';
  auto add = [&](const Label& l) {
    out_ += sep;
    out_ += l.name;
    out_ += "=\"";
    out_ += escape_label_value(l.value);
    out_ += '"';
    sep = ',';
  };
  for (const Label& l : labels) add(l);
  if (extra != nullptr) add(*extra);
  out_ += "} ";
}

void PrometheusText::sample(std::string_view name, std::initializer_list<Label> labels, double value) {
  series(name, "", labels, nullptr);
  out_ += format_value(value);
  out_ += '\n';
}

void PrometheusText::sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value) {
  series(name, "", labels, nullptr);
  out_ += std::to_string(value);
  out_ += '\n';
}

void PrometheusText::histogram(std::string_view name, std::initializer_list<Label> labels,
                               const HistogramSnapshot& h) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += i < h.counts.size() ? h.counts[i] : 0;
    const std::string le = i < h.bounds.size() ? format_value(h.bounds[i]) : "+Inf";
    const Label bound{"le", le};
    series(name, "_bucket", labels, &bound);
    out_ += std::to_string(cumulative);
    out_ += '\n';
  }
  series(name, "_sum", labels, nullptr);
  out_ += format_value(h.sum);
  out_ += '\n';
  series(name, "_count", labels, nullptr);
  out_ += std::to_string(cumulative);
  out_ += '\n';
}

}  // namespace cbm
