// Where the API key comes from, and the rule for sending it over plain HTTP.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cbm {

// --api-key, else BIGMODEL_API_KEY (the Python tool's), else ZHIPUAI_API_KEY (the SDK's).
std::optional<std::string> resolve_api_key(const std::optional<std::string>& from_flag);

// True when `url` is https, or http to a loopback host (127.0.0.0/8, ::1, localhost): the only places
// the key may go without --allow-insecure-http.
bool key_may_travel_to(std::string_view url);

// True for http:// and https:// URLs with a host; the base URL is checked before anything starts.
bool is_http_url(std::string_view url);

}  // namespace cbm
