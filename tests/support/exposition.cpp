#include "exposition.hpp"

#include <algorithm>

#include <cmath>
#include <cstdlib>
#include <set>
#include <stdexcept>

namespace cbm::test {
namespace {

bool is_metric_name(std::string_view s, bool colon_allowed = true) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_allowed && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

double parse_value(std::string_view s) {
  if (s == "+Inf" || s == "Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s == "NaN") return std::nan("");
  if (s.empty() || s.find_first_not_of("0123456789.eE+-") != std::string_view::npos) {
    throw std::runtime_error("bad value '" + std::string(s) + "'");
  }
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) throw std::runtime_error("bad value '" + text + "'");
  return v;
}

std::string unescape_help(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) throw std::runtime_error("help ends in a lone backslash");
    if (s[i] == '\\') {
      out += '\\';
    } else if (s[i] == 'n') {
      out += '\n';
    } else {
      throw std::runtime_error("bad escape in help");
    }
  }
  return out;
}

// name{label="value",...} value
Sample parse_sample(std::string_view line) {
  Sample s;
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s.name = line.substr(0, i);
  if (!is_metric_name(s.name)) throw std::runtime_error("bad metric name '" + s.name + "'");
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i >= line.size()) throw std::runtime_error("unterminated label set");
      if (line[i] == '}') {
        ++i;
        break;
      }
      if (!s.labels.empty()) {
        if (line[i] != ',') throw std::runtime_error("labels not separated by ','");
        ++i;
      }
      const std::size_t eq = line.find('=', i);
      if (eq == std::string_view::npos) throw std::runtime_error("label without '='");
      const std::string name(line.substr(i, eq - i));
      if (!is_metric_name(name, false)) throw std::runtime_error("bad label name '" + name + "'");
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') throw std::runtime_error("label value not quoted");
      ++i;
      std::string value;
      while (true) {
        if (i >= line.size()) throw std::runtime_error("unterminated label value");
        const char c = line[i++];
        if (c == '"') break;
        if (c == '\n') throw std::runtime_error("raw line feed in a label value");
        if (c != '\\') {
          value += c;
          continue;
        }
        if (i >= line.size()) throw std::runtime_error("unterminated escape");
        const char e = line[i++];
        if (e == '\\' || e == '"') {
          value += e;
        } else if (e == 'n') {
          value += '\n';
        } else {
          throw std::runtime_error(std::string("bad escape '\\") + e + "' in a label value");
        }
      }
      if (!s.labels.emplace(name, std::move(value)).second)
        throw std::runtime_error("repeated label " + name);
    }
  }
  if (i >= line.size() || line[i] != ' ') throw std::runtime_error("no space before the value");
  const std::string_view value = line.substr(i + 1);
  if (value.find(' ') != std::string_view::npos) throw std::runtime_error("a timestamp or trailing text");
  s.value = parse_value(value);
  return s;
}

std::string series_key(const Sample& s) {
  std::string k = s.name + "{";
  for (const auto& [n, v] : s.labels) k += n + "=" + v + ",";
  return k + "}";
}

void check_histogram(const std::string& family, const MetricFamily& f) {
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // le, cumulative count
    std::optional<double> count;
    std::optional<double> sum;
  };
  std::map<Labels, Series> by_labels;
  for (const Sample& s : f.samples) {
    Labels rest = s.labels;
    if (s.name == family + "_bucket") {
      const auto le = rest.find("le");
      if (le == rest.end()) throw std::runtime_error(family + ": a bucket without le");
      const double bound = parse_value(le->second);
      rest.erase(le);
      by_labels[rest].buckets.emplace_back(bound, s.value);
    } else if (s.name == family + "_count") {
      by_labels[rest].count = s.value;
    } else if (s.name == family + "_sum") {
      by_labels[rest].sum = s.value;
    } else {
      throw std::runtime_error(family + ": sample '" + s.name + "' in a histogram");
    }
  }
  for (const auto& [labels, series] : by_labels) {
    if (series.buckets.empty() || !series.count || !series.sum) {
      throw std::runtime_error(family + ": a series lacks buckets, _count or _sum");
    }
    for (std::size_t i = 1; i < series.buckets.size(); ++i) {
      if (!(series.buckets[i].first > series.buckets[i - 1].first)) {
        throw std::runtime_error(family + ": bucket bounds not ascending");
      }
      if (series.buckets[i].second < series.buckets[i - 1].second) {
        throw std::runtime_error(family + ": buckets not cumulative");
      }
    }
    if (!std::isinf(series.buckets.back().first)) throw std::runtime_error(family + ": no +Inf bucket");
    if (series.buckets.back().second != *series.count) {
      throw std::runtime_error(family + ": +Inf bucket differs from _count");
    }
  }
}

}  // namespace

std::optional<double> Exposition::find(const std::string& name, const Labels& labels) const {
  for (const auto& [family_name, family] : families) {
    for (const Sample& s : family.samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
  }
  return std::nullopt;
}

double Exposition::value(const std::string& name, const Labels& labels) const {
  if (auto v = find(name, labels)) return *v;
  Sample wanted{name, labels, 0.0};
  throw std::runtime_error("no series " + series_key(wanted));
}

double Exposition::total(const std::string& name, const Labels& subset) const {
  double sum = 0.0;
  for (const auto& [family_name, family] : families) {
    for (const Sample& s : family.samples) {
      if (s.name != name) continue;
      const bool included = std::all_of(subset.begin(), subset.end(), [&s](const auto& label) {
        const auto it = s.labels.find(label.first);
        return it != s.labels.end() && it->second == label.second;
      });
      if (included) sum += s.value;
    }
  }
  return sum;
}

Exposition parse_exposition(std::string_view text) {
  Exposition out;
  std::set<std::string> series_seen;
  std::set<std::string> closed;  // families whose samples are over
  std::string current;           // the family of the last sample
  if (!text.empty() && text.back() != '\n')
    throw std::runtime_error("the document does not end in a line feed");
  std::size_t line_number = 0;
  std::size_t pos = 0;
  try {
    while (pos < text.size()) {
      ++line_number;
      const std::size_t eol = text.find('\n', pos);
      const std::string_view line = text.substr(pos, eol - pos);
      pos = eol + 1;
      if (line.empty()) throw std::runtime_error("blank line");
      if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
        const std::string_view rest = line.substr(7);
        const auto sp = rest.find(' ');
        if (sp == std::string_view::npos) throw std::runtime_error("HELP/TYPE without text");
        const std::string name(rest.substr(0, sp));
        if (!is_metric_name(name)) throw std::runtime_error("bad metric name '" + name + "'");
        MetricFamily& f = out.families[name];
        if (!f.samples.empty()) throw std::runtime_error("HELP/TYPE of '" + name + "' after its samples");
        if (line[2] == 'H') {
          if (!f.help.empty()) throw std::runtime_error("second HELP for '" + name + "'");
          f.help = unescape_help(rest.substr(sp + 1));
        } else {
          static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
          if (!f.type.empty()) throw std::runtime_error("second TYPE for '" + name + "'");
          f.type = rest.substr(sp + 1);
          if (kTypes.count(f.type) == 0) throw std::runtime_error("unknown type '" + f.type + "'");
        }
        continue;
      }
      if (line.front() == '#') continue;  // a comment
      Sample s = parse_sample(line);
      std::string family = s.name;
      auto it = out.families.find(family);
      for (const char* suffix : {"_bucket", "_count", "_sum"}) {
        if (it != out.families.end() && !it->second.type.empty()) break;
        const std::string_view sv = suffix;
        if (s.name.size() > sv.size() && s.name.ends_with(sv)) {
          family = s.name.substr(0, s.name.size() - sv.size());
          it = out.families.find(family);
        }
      }
      if (it == out.families.end() || it->second.type.empty()) {
        throw std::runtime_error("sample '" + s.name + "' has no TYPE before it");
      }
      const std::string& type = it->second.type;
      if ((type == "counter" || type == "gauge") && s.name != family) {
        throw std::runtime_error("sample '" + s.name + "' in " + type + " '" + family + "'");
      }
      if (type == "counter" && !(s.value >= 0)) throw std::runtime_error("counter '" + s.name + "' below 0");
      if (family != current) {
        if (closed.count(family) != 0) throw std::runtime_error("samples of '" + family + "' not contiguous");
        if (!current.empty()) closed.insert(current);
        current = family;
      }
      if (!series_seen.insert(series_key(s)).second)
        throw std::runtime_error("repeated series " + series_key(s));
      it->second.samples.push_back(std::move(s));
    }
    for (const auto& [name, f] : out.families) {
      if (f.type.empty()) throw std::runtime_error("family '" + name + "' has HELP but no TYPE");
      if (f.type == "histogram") check_histogram(name, f);
    }
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("exposition line " + std::to_string(line_number) + ": " + e.what());
  }
  return out;
}

}  // namespace cbm::test
