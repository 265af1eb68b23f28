#include "api_error.hpp"

#include <array>
#include <utility>

namespace cbm {
namespace {

constexpr std::array<std::pair<ErrorClass, std::string_view>, 4> kClassNames{{
    {ErrorClass::retryable, "retryable"},
    {ErrorClass::task_fatal, "task_fatal"},
    {ErrorClass::run_fatal, "run_fatal"},
    {ErrorClass::wait_until, "wait_until"},
}};

constexpr std::array<std::pair<ErrorKind, std::string_view>, 9> kKindNames{{
    {ErrorKind::api, "api"},
    {ErrorKind::transport, "transport"},
    {ErrorKind::timeout, "timeout"},
    {ErrorKind::protocol, "protocol"},
    {ErrorKind::content, "content"},
    {ErrorKind::invalid_json, "invalid_json"},
    {ErrorKind::crash, "crash"},
    {ErrorKind::cancelled, "cancelled"},
    {ErrorKind::incomplete, "incomplete"},
}};

template <typename Enum, std::size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& table, Enum e) {
  for (const auto& [value, name] : table) {
    if (value == e) return name;
  }
  return "unknown";
}

template <typename Enum, std::size_t N>
std::optional<Enum> value_of(const std::array<std::pair<Enum, std::string_view>, N>& table,
                             std::string_view s) {
  for (const auto& [value, name] : table) {
    if (name == s) return value;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(ErrorClass c) { return name_of(kClassNames, c); }
std::string_view to_string(ErrorKind k) { return name_of(kKindNames, k); }
std::optional<ErrorClass> error_class_from_string(std::string_view s) { return value_of(kClassNames, s); }
std::optional<ErrorKind> error_kind_from_string(std::string_view s) { return value_of(kKindNames, s); }

std::string ApiError::describe() const {
  std::string out;
  if (http_status != 0) out += "HTTP " + std::to_string(http_status);
  if (!code.empty()) out += (out.empty() ? "code " : " code ") + code;
  if (!out.empty()) out += ": ";
  out += message;
  return out;
}

}  // namespace cbm
