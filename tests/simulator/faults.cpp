#include "faults.h"

#include <array>
#include <charconv>
#include <random>
#include <stdexcept>

#include "api_error.h"
#include "random.h"

namespace simulator {
namespace {

constexpr std::array<std::string_view, kFaultCount> kNames = {
    "429_1302",
    "429_1302_retry_after",
    "429_1302_retry_after_ms",
    "429_1113",
    "429_1305",
    "401",
    "400_1301",
    "400_1261",
    "400_1211",
    "500_1234",
    "503",
    "hang",
    "drip",
    "reset",
    "invalid_json",
    "truncated_json",
    "oversize",
    "sensitive",
    "network_error",
    "sse_error",
    "empty_choices",
    "wrong_types",
    "kill_client",
    "length",
    "context_exceeded",
    "empty_content",
    "unrecognized_argument",
    "code_NNNN",
    "code_NNNN_int",
    "code_NNNN_in200",
    "quota_reset_Ns",
    "quota_1310_reset_Ns",
    "huge_error",
    "bad_utf8",
    "echo_key",
    "many_values",
};

bool parameterised(Fault fault) {
  switch (fault) {
    case Fault::kCode:
    case Fault::kCodeInt:
    case Fault::kCodeIn200:
    case Fault::kQuotaReset:
    case Fault::kQuota1310Reset:
      return true;
    default:
      return false;
  }
}

std::optional<std::uint32_t> whole_number(std::string_view digits) {
  std::uint32_t n = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return n;
}

// "code_1302", "code_1302_int", "code_1302_in200", "quota_reset_3s", "quota_1310_reset_3s".
std::optional<std::pair<Fault, std::uint32_t>> parse_parameterised(std::string_view name) {
  if (name.starts_with("code_")) {
    name.remove_prefix(5);
    Fault fault = Fault::kCode;
    if (name.ends_with("_int")) {
      fault = Fault::kCodeInt;
      name.remove_suffix(4);
    } else if (name.ends_with("_in200")) {
      fault = Fault::kCodeIn200;
      name.remove_suffix(6);
    }
    const auto code = whole_number(name);
    if (!code || !platform_error(*code)) return std::nullopt;
    return std::pair{fault, *code};
  }
  for (const auto& [prefix, fault] : {std::pair{std::string_view("quota_reset_"), Fault::kQuotaReset},
                                      std::pair{std::string_view("quota_1310_reset_"), Fault::kQuota1310Reset}}) {
    if (!name.starts_with(prefix) || !name.ends_with('s')) continue;
    const auto seconds = whole_number(name.substr(prefix.size(), name.size() - prefix.size() - 1));
    if (!seconds) return std::nullopt;
    return std::pair{fault, *seconds};
  }
  return std::nullopt;
}

constexpr std::string_view kMarkerOpen = "[[fault:";
constexpr std::string_view kMarkerClose = "]]";

// Parses "NAME" or "NAME*K" (the text between "[[fault:" and "]]").
std::optional<FaultMarker> parse_marker_body(std::string_view body) {
  std::optional<std::uint64_t> first_k;
  if (const auto star = body.find('*'); star != std::string_view::npos) {
    const std::string_view digits = body.substr(star + 1);
    std::uint64_t k = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    first_k = k;
    body = body.substr(0, star);
  }
  if (const auto fault = fault_from_name(body)) return FaultMarker{*fault, 0, first_k, {}};
  if (const auto fault = parse_parameterised(body)) return FaultMarker{fault->first, fault->second, first_k, {}};
  return std::nullopt;
}

}  // namespace

std::string_view fault_name(Fault fault) {
  return kNames[static_cast<std::size_t>(fault)];
}

std::optional<Fault> fault_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name && !parameterised(static_cast<Fault>(i))) return static_cast<Fault>(i);
  }
  return std::nullopt;
}

std::optional<FaultMarker> find_marker(std::string_view text) {
  for (auto open = text.find(kMarkerOpen); open != std::string_view::npos;
       open = text.find(kMarkerOpen, open + 1)) {
    const auto body_start = open + kMarkerOpen.size();
    const auto close = text.find(kMarkerClose, body_start);
    if (close == std::string_view::npos) return std::nullopt;
    if (auto marker = parse_marker_body(text.substr(body_start, close - body_start))) {
      marker->text = text.substr(open, close + kMarkerClose.size() - open);
      return marker;
    }
  }
  return std::nullopt;
}

bool MarkerLedger::should_fault(const FaultMarker& marker, std::string_view topic) {
  if (!marker.first_k) return true;
  std::string key;
  key.reserve(marker.text.size() + 1 + topic.size());
  key.append(marker.text).append(1, '\n').append(topic);
  std::lock_guard lock(mutex_);
  return ++seen_[key] <= *marker.first_k;
}

void MarkerLedger::reset() {
  std::lock_guard lock(mutex_);
  seen_.clear();
}

FaultRates FaultRates::parse(std::string_view spec) {
  FaultRates rates;
  double total = 0;
  while (!spec.empty()) {
    const auto comma = spec.find(',');
    const std::string_view entry = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);

    const auto equals = entry.find('=');
    const auto fault = fault_from_name(entry.substr(0, equals));
    if (equals == std::string_view::npos || !fault) {
      throw std::invalid_argument("bad --fault-rate entry '" + std::string(entry) + "' (want NAME=P)");
    }
    const std::string_view number = entry.substr(equals + 1);
    double probability = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), probability);
    if (ec != std::errc{} || end != number.data() + number.size() || probability < 0 || probability > 1) {
      throw std::invalid_argument("bad probability in --fault-rate entry '" + std::string(entry) + "'");
    }
    total += probability;
    rates.rates_.emplace_back(*fault, probability);
  }
  if (total > 1 + 1e-9) throw std::invalid_argument("--fault-rate probabilities sum to more than 1");
  return rates;
}

std::optional<Fault> FaultRates::draw() const {
  if (rates_.empty()) return std::nullopt;
  double roll = std::uniform_real_distribution<double>(0, 1)(thread_rng());
  for (const auto& [fault, probability] : rates_) {
    if (roll < probability) return fault;
    roll -= probability;
  }
  return std::nullopt;
}

}  // namespace simulator
