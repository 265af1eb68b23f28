#include "listen_address.hpp"

#include <charconv>

namespace cbm {

std::string ListenAddress::to_string() const {
  const std::string p = std::to_string(port);
  return host.find(':') != std::string::npos ? "[" + host + "]:" + p : host + ":" + p;
}

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find_first_of(":[]") != std::string_view::npos) {
    return std::nullopt;  // an IPv6 literal must be bracketed: the port would be ambiguous
  }
  if (host.empty() || port.empty() || port.size() > 5) return std::nullopt;
  if (host.find_first_of(" \t\r\n/") != std::string_view::npos) return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) return std::nullopt;
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace cbm
