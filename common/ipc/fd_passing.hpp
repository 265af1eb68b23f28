// Sending a message with a file descriptor attached (SCM_RIGHTS) over an AF_UNIX socket: how the
// supervisor hands a worker's channel socket to the fork server, and how the fork server hands back
// the new worker's pidfd.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace cbm {

// One sendmsg() of `size` bytes, with `fd` attached when it is >= 0; EINTR is retried. Returns what
// sendmsg returned (-1 with errno on failure).
ssize_t send_with_fd(int socket, const void* data, std::size_t size, int fd, int flags);

// One recvmsg() into `data` (close-on-exec on a received descriptor); EINTR is retried. `fd` is the
// descriptor that came with the message, or -1; `truncated` tells that the message or its control
// data did not fit. Returns what recvmsg returned.
ssize_t recv_with_fd(int socket, void* data, std::size_t size, int flags, int& fd, bool& truncated);

}  // namespace cbm
