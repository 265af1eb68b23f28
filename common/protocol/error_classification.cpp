#include "error_classification.hpp"

#include <charconv>

namespace cbm {
namespace {

std::optional<int> code_number(std::string_view code) {
  int n = 0;
  auto [end, ec] = std::from_chars(code.data(), code.data() + code.size(), n);
  if (ec != std::errc{} || end != code.data() + code.size()) return std::nullopt;
  return n;
}

}  // namespace

ErrorClass classify_http_error(int http_status, std::string_view code) {
  if (auto n = code_number(code)) {
    switch (*n) {
      case 401:
      case 1000:
      case 1001:
      case 1002:
      case 1003:
      case 1004:  // authentication failed / token expired or invalid
      case 1113:  // no balance: the SDKs retry it, which only burns the list
      case 1211:  // model does not exist
      case 1304:  // daily quota reached
        return ErrorClass::run_fatal;
      case 1302:  // too many requests in flight for this account
      case 1303:  // request frequency too high
      case 1305:  // model overloaded platform-wide
      case 1312:  // model busy
      case 500:
      case 1234:  // internal / network error
        return ErrorClass::retryable;
      case 1210:
      case 1212:
      case 1213:
      case 1214:
      case 1215:  // bad parameters: the same request fails again
      case 1261:  // prompt too long
      case 1301:  // unsafe content
        return ErrorClass::task_fatal;
      default:
        break;
    }
  }
  if (http_status == 401 || http_status == 403) return ErrorClass::run_fatal;
  if (http_status == 408 || http_status == 409 || http_status == 429 || http_status >= 500) {
    return ErrorClass::retryable;
  }
  if (http_status >= 400) return ErrorClass::task_fatal;
  // A non-error status with an error body (some proxies do this): treat as transient.
  return ErrorClass::retryable;
}

std::optional<ErrorClass> classify_finish_reason(std::string_view finish_reason) {
  if (finish_reason == "sensitive") return ErrorClass::task_fatal;
  if (finish_reason == "network_error") return ErrorClass::retryable;
  return std::nullopt;
}

}  // namespace cbm
