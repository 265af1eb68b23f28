// The wire format between the supervisor (WorkerLauncher) and `concurrent_bigmodel_worker --launcher`,
// over an AF_UNIX SOCK_SEQPACKET socketpair: one struct per packet, native byte order (both ends are
// built from this header and run on this host). Header-only because both executables include it.
//
//   supervisor -> launcher  SpawnRequest, with SCM_RIGHTS: the worker's channel socket
//   launcher -> supervisor  LauncherMessage:
//     hello         once, when ready to fork (value: kVersion)
//     spawned       the reply to a request: the new worker's pid, with SCM_RIGHTS: a pidfd for it
//                   (opened before the launcher could reap it, so it can never name another process)
//     spawn_failed  the reply to a request that could not be served (value: an errno)
//     exited        a worker the launcher reaped (value: its raw wait status); sent at any time, but
//                   never before the `spawned` reply for that worker
//
// One request is outstanding at a time. The launcher exits when the supervisor closes its end.
#pragma once

#include <cstdint>
#include <type_traits>

namespace cbm::launcher_protocol {

inline constexpr std::int32_t kVersion = 2;
inline constexpr int kControlFd = 3;  // the launcher's end of the socketpair, in the launcher

struct SpawnRequest {
  std::int32_t version;
  std::int32_t slot;
  char channel[240];  // NUL-terminated shm channel name
};

enum class MessageKind : std::uint32_t { hello = 1, spawned = 2, spawn_failed = 3, exited = 4 };

struct LauncherMessage {
  MessageKind kind;
  std::int32_t pid;    // hello: the launcher's; spawned, exited: the worker's
  std::int32_t value;  // see MessageKind
};

static_assert(std::is_trivially_copyable_v<SpawnRequest> && std::is_trivially_copyable_v<LauncherMessage>);

}  // namespace cbm::launcher_protocol
