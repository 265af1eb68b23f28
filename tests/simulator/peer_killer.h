#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstddef>

namespace simulator {

// Crash injection for supervisor tests (the kill_client fault): SIGKILLs every process, other than this
// one, that holds the socket at the far end of our connection, `peer` being that socket's address. Works
// only when the peer lives on this host and in this network namespace (normally loopback): it finds the peer
// socket's inode in /proc/net/tcp{,6} and then the processes whose /proc/PID/fd links to `socket:[inode]`.
// Returns how many processes were signalled; 0 when none was found.
std::size_t kill_peer_processes(const boost::asio::ip::tcp::endpoint& peer);

}  // namespace simulator
