#include "api_key.hpp"

#include <cstdlib>
#include <initializer_list>

namespace cbm {
namespace {

std::string_view host_of(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  if (rest.starts_with('[')) return rest.substr(0, rest.find(']') + 1);
  return rest.substr(0, rest.find(':'));
}

std::optional<std::string> first_set(std::initializer_list<const char*> variables) {
  for (const char* var : variables) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return std::string(v);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> resolve_api_key(const std::optional<std::string>& from_flag) {
  if (from_flag && !from_flag->empty()) return from_flag;
  return first_set({"BIGMODEL_API_KEY", "ZHIPUAI_API_KEY", "ZAI_API_KEY"});
}

std::string resolve_base_url(const std::string& from_flag, const std::string& fallback) {
  if (!from_flag.empty()) return from_flag;
  return first_set({"BIGMODEL_BASE_URL", "ZHIPUAI_BASE_URL", "ZAI_BASE_URL"}).value_or(fallback);
}

bool is_http_url(std::string_view url) {
  return (url.starts_with("http://") || url.starts_with("https://")) && !host_of(url).empty();
}

bool key_may_travel_to(std::string_view url) {
  if (url.starts_with("https://")) return true;
  if (!url.starts_with("http://")) return false;
  const std::string_view host = host_of(url);
  const bool ipv4_literal = host.find_first_not_of("0123456789.") == std::string_view::npos;
  return host == "localhost" || host == "[::1]" || (ipv4_literal && host.starts_with("127."));
}

}  // namespace cbm
