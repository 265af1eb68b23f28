// ShmChannel: the message channel between the supervisor and one worker process.
//
// Who calls what
//   Supervisor: creates a SupervisorChannel per worker slot and generation, spawns the worker with
//   name() and worker_socket_fd() (see "Spawning"), then calls close_worker_socket(). It puts fd() in
//   its poll/epoll set (level-triggered) for readability and calls on_readable() whenever it is
//   readable; try_send() at any time. Nothing here ever blocks the supervisor.
//   Worker: constructs a WorkerChannel from the name and fd it was given, then loops receive() / send().
//   Both block; receive() returns nullopt when the supervisor is gone, and the worker should exit.
//
// Why it survives a worker SIGKILLed at any instant (docs/design.md, "Hazards")
//   No lock or condition variable is shared. Payloads go through two single-producer/single-consumer
//   byte rings in a shared memory segment (to_worker: tasks, to_supervisor: results) whose only shared
//   state is a pair of monotonically increasing counters per ring. A producer copies bytes, then
//   publishes them with a release store of the tail; a producer killed mid-copy never published, so the
//   consumer never sees a torn message. Wake-ups and death travel through a Doorbell (a socketpair):
//   a process waits in the kernel, never on shared memory, and a dead worker shows up as EOF.
//   The supervisor trusts nothing the worker can write: counters and frame lengths are checked against
//   its own copy of the capacity and max_message_size, and a violation is reported as kCorrupt.
//
// Protocol
//   Every message is framed (see kFrameHeaderBytes) and may be larger than the ring: it is streamed in
//   pieces as space frees and reassembled by the consumer. After any change of a ring counter (publish
//   or consume) a side rings the doorbell; a side waits only after draining the doorbell and re-checking
//   its rings, so a change is either seen by that check or leaves a byte that ends the wait: no wake-up
//   is lost.
//
// Spawning
//   Both socket ends are close-on-exec. The worker's end must survive exec in its own child only: clear
//   FD_CLOEXEC in that child between fork and exec (clear_cloexec() in doorbell.hpp is async-signal-safe),
//   and pass the fd number and name() on its command line. After the spawn the supervisor must call
//   close_worker_socket(): while it holds a copy, the worker's death produces no EOF.
//
// Lifetime
//   The SupervisorChannel owns the segment and removes its name on destruction; the worker only unmaps.
//   A channel whose worker died or went corrupt is not reused: destroy it and create a new generation.
//   Segments left by a supervisor that was SIGKILLed are removed by sweep_stale_channels().
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cbm {

// Wire format of one message inside a ring, native byte order (both ends run on this host):
//   uint64 length | uint64 (length ^ kFrameCheck) | length bytes
// The check word turns most garbage into a detected kCorrupt before its length is believed.
inline constexpr std::size_t kFrameHeaderBytes = 16;
inline constexpr std::uint64_t kFrameCheck = 0x6362'6d2e'6672'616dULL;

struct ChannelOptions {
  // Bytes per direction; the segment holds two rings. Reserved (zeroed) when the channel is created and
  // freed with it, per worker: a task is under 1 KiB and a result a few KiB, larger messages stream.
  std::size_t ring_capacity = 64 * 1024;
  std::size_t max_message_size = 64 * 1024 * 1024;  // larger frames are refused (send) or corrupt (receive)
};

enum class ChannelStatus {
  kOpen,
  kPeerGone,  // the other process closed its end or died
  kCorrupt,   // the peer broke the protocol (impossible counters or frame); the channel is unusable
};

enum class SendResult {
  kAccepted,       // the message will be delivered whole unless the channel closes first
  kTooLarge,       // size > max_message_size; nothing was queued
  kChannelClosed,  // status() is not kOpen
};

// "cbm.<uid>.<supervisor_pid>.<slot>.<generation>": unique per supervisor, worker slot and restart,
// and recognisable by sweep_stale_channels().
std::string channel_name(uid_t uid, pid_t supervisor_pid, unsigned slot, std::uint64_t generation);

// Removes /dev/shm segments named "cbm.<uid>.<pid>.*" whose pid no longer exists. Returns how many.
// A live pid (including one reused by an unrelated process) keeps its segments.
std::size_t sweep_stale_channels(uid_t uid);

class SupervisorChannel {
 public:
  // Creates segment `name` (mode 0600, must not exist) and the doorbell pair.
  // Throws std::invalid_argument for unusable options, std::runtime_error if the segment exists or
  // cannot be created.
  explicit SupervisorChannel(const std::string& name, const ChannelOptions& options = {});
  SupervisorChannel(SupervisorChannel&&) noexcept;
  SupervisorChannel& operator=(SupervisorChannel&&) noexcept;
  ~SupervisorChannel();  // closes both sockets, unmaps and removes the segment's name

  const std::string& name() const;
  int fd() const;                // the supervisor's end: watch it for readability
  int worker_socket_fd() const;  // the worker's end, for the spawn; -1 after close_worker_socket()
  void close_worker_socket();

  // Queues `message` and copies as much of the outbox into the ring as fits; the rest follows from
  // on_readable() as the worker consumes. Never blocks and never reads the doorbell (so it cannot steal
  // the readability on_readable() relies on). Messages arrive in order.
  SendResult try_send(std::string message);

  struct Received {
    std::vector<std::string> messages;  // complete messages, in order
    ChannelStatus status;               // kOpen, or why the channel ended (after these messages)
  };
  // Call when fd() is readable (a spurious call is harmless). Drains the doorbell, returns the messages
  // completed since the last call, and continues flushing the outbox. Does a bounded amount of work
  // (at most one ring's worth of bytes each way). A partial message of a dead worker is discarded.
  Received on_readable();

  ChannelStatus status() const;
  std::size_t queued_messages() const;  // messages not yet entirely in the ring

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class WorkerChannel {
 public:
  // Maps the existing segment `name` and adopts `socket_fd` (the worker's end; closed even if this
  // throws). Throws std::runtime_error if the segment is missing or its header is not a channel's.
  WorkerChannel(const std::string& name, int socket_fd);
  WorkerChannel(WorkerChannel&&) noexcept;
  WorkerChannel& operator=(WorkerChannel&&) noexcept;
  ~WorkerChannel();  // closes the socket and unmaps; never removes the segment

  // Blocks until the whole message is in the ring (waiting for the supervisor to make room as needed).
  SendResult send(std::string_view message);

  // Blocks until a message arrives (signals do not end the wait). nullopt when the channel ended: status()
  // tells whether the supervisor is gone (kPeerGone) or broke the protocol (kCorrupt); either way the worker
  // should exit.
  std::optional<std::string> receive();

  // For a worker with an event loop of its own: the doorbell socket, to watch for readability
  // (level-triggered), and a receive() that never blocks: the next message if one has arrived, else
  // nullopt (status() says whether the channel ended). It drains the doorbell before looking at the
  // ring, so a message that arrives later leaves the socket readable: no wake-up is lost.
  int fd() const;
  std::optional<std::string> try_receive();

  ChannelStatus status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cbm
