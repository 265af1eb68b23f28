// Where the API key and the base URL come from, and the rule for sending the key over plain HTTP.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cbm {

// The first set and non-empty: --api-key, BIGMODEL_API_KEY (the Python tool's), ZHIPUAI_API_KEY (the
// zhipuai SDK's), ZAI_API_KEY (the zai SDK's).
std::optional<std::string> resolve_api_key(const std::optional<std::string>& from_flag);
inline constexpr const char* kApiKeyVariables = "BIGMODEL_API_KEY, ZHIPUAI_API_KEY or ZAI_API_KEY";

// The same order for the base URL: --base-url, BIGMODEL_BASE_URL, ZHIPUAI_BASE_URL, ZAI_BASE_URL, else
// `fallback` (the platform's mainland endpoint).
std::string resolve_base_url(const std::string& from_flag, const std::string& fallback);

// True when `url` is https, or http to a loopback host (127.0.0.0/8, ::1, localhost): the only places
// the key may go without --allow-insecure-http.
bool key_may_travel_to(std::string_view url);

// True for http:// and https:// URLs with a host; the base URL is checked before anything starts.
bool is_http_url(std::string_view url);

}  // namespace cbm
