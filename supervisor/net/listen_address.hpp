// ListenAddress: where a server of ours listens, as the user writes it: HOST:PORT, with an IPv6
// literal in brackets ([::1]:9464). Port 0 asks the kernel for any free port.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cbm {

struct ListenAddress {
  std::string host;  // a name or an IP literal, without brackets
  std::uint16_t port = 0;

  std::string to_string() const;  // HOST:PORT again, brackets restored for IPv6
};

// nullopt unless `text` is HOST:PORT with a non-empty host and a decimal port 0..65535.
std::optional<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace cbm
