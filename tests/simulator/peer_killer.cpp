#include "peer_killer.h"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace simulator {
namespace {

namespace fs = std::filesystem;
namespace ip = boost::asio::ip;

// v4-mapped IPv6 addresses compare equal to their IPv4 form: a client may reach an IPv4 listener
// through an IPv6 socket.
ip::address normalized(const ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, address.to_v6());
  }
  return address;
}

std::optional<std::uint32_t> parse_hex32(std::string_view hex) {
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), value, 16);
  if (ec != std::errc{} || end != hex.data() + hex.size()) return std::nullopt;
  return value;
}

// Parses "0100007F:1F90" (tcp) or 32 hex digits + ":PORT" (tcp6). The kernel prints each 32-bit word of
// the address as a native-endian integer, so copying the words back in memory order restores the bytes.
std::optional<ip::tcp::endpoint> parse_proc_endpoint(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view address_hex = text.substr(0, colon);
  const auto port = parse_hex32(text.substr(colon + 1));
  if (!port || *port > 0xFFFF || (address_hex.size() != 8 && address_hex.size() != 32)) return std::nullopt;

  std::array<unsigned char, 16> bytes{};
  for (std::size_t word = 0; word < address_hex.size() / 8; ++word) {
    const auto value = parse_hex32(address_hex.substr(word * 8, 8));
    if (!value) return std::nullopt;
    std::memcpy(bytes.data() + word * 4, &*value, 4);
  }
  ip::address address;
  if (address_hex.size() == 8) {
    address = ip::address_v4(ip::address_v4::bytes_type{bytes[0], bytes[1], bytes[2], bytes[3]});
  } else {
    address = ip::address_v6(bytes);
  }
  return ip::tcp::endpoint(address, static_cast<unsigned short>(*port));
}

// Inodes of the sockets whose local endpoint is `peer`, from one /proc/net table.
void collect_socket_inodes(const char* table, const ip::tcp::endpoint& peer,
                           std::vector<std::string>& inodes) {
  std::ifstream file(table);
  std::string line;
  std::getline(file, line);  // column titles
  while (std::getline(file, line)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >>
          inode)) {
      continue;
    }
    const auto endpoint = parse_proc_endpoint(local);
    if (endpoint && endpoint->port() == peer.port() &&
        normalized(endpoint->address()) == normalized(peer.address()) && inode != "0") {
      inodes.push_back("socket:[" + inode + "]");
    }
  }
}

// Whether process `pid_dir` (a /proc/PID directory) has an fd linked to one of `links`.
bool owns_any(const fs::path& pid_dir, const std::vector<std::string>& links) {
  std::error_code ec;
  for (fs::directory_iterator fd(pid_dir / "fd", ec), end; !ec && fd != end; fd.increment(ec)) {
    std::error_code link_ec;
    const fs::path target = fs::read_symlink(fd->path(), link_ec);
    if (link_ec) continue;
    for (const auto& link : links) {
      if (target.native() == link) return true;
    }
  }
  return false;
}

std::optional<pid_t> pid_of(const fs::path& entry) {
  const std::string name = entry.filename().native();
  pid_t pid = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  if (ec != std::errc{} || end != name.data() + name.size()) return std::nullopt;
  return pid;
}

}  // namespace

std::size_t kill_peer_processes(const ip::tcp::endpoint& peer) {
  std::vector<std::string> links;
  collect_socket_inodes("/proc/net/tcp", peer, links);
  collect_socket_inodes("/proc/net/tcp6", peer, links);
  if (links.empty()) return 0;

  const pid_t self = getpid();
  std::size_t killed = 0;
  std::error_code ec;
  for (fs::directory_iterator entry("/proc", ec), end; !ec && entry != end; entry.increment(ec)) {
    const auto pid = pid_of(entry->path());
    if (!pid || *pid == self || !owns_any(entry->path(), links)) continue;
    if (kill(*pid, SIGKILL) == 0) ++killed;
  }
  return killed;
}

}  // namespace simulator
