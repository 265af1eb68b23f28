// The shm channel's guarantees, exercised with real fork()ed worker processes.
//
// Children never return into Catch: they report through their exit status and _exit(). Every wait in
// the parent is a poll() on the channel's fd; its timeout only turns a hang (a lost wake-up, a missing
// EOF) into a failure.
#include "shm_channel.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "doorbell.hpp"

CATCH_REGISTER_ENUM(cbm::ChannelStatus, cbm::ChannelStatus::kOpen, cbm::ChannelStatus::kPeerGone,
                    cbm::ChannelStatus::kCorrupt)
CATCH_REGISTER_ENUM(cbm::SendResult, cbm::SendResult::kAccepted, cbm::SendResult::kTooLarge,
                    cbm::SendResult::kChannelClosed)

namespace {

using cbm::ChannelOptions;
using cbm::ChannelStatus;
using cbm::SendResult;
using cbm::SupervisorChannel;
using cbm::WorkerChannel;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kHangLimit{10000};

std::string fresh_name(unsigned slot = 0) {
  static std::uint64_t generation = 0;
  return cbm::channel_name(::getuid(), ::getpid(), slot, generation++);
}

bool segment_exists(const std::string& name) {
  return std::filesystem::exists("/dev/shm/" + name);
}

// Forks a worker process that attaches to `channel` and runs `body`; its return value is the exit status.
pid_t spawn_worker(SupervisorChannel& channel, const std::function<int(WorkerChannel&)>& body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(channel.fd());  // what close-on-exec does for a real worker
    int status = 90;
    try {
      WorkerChannel worker(channel.name(), channel.worker_socket_fd());
      status = body(worker);
    } catch (...) {
      status = 91;
    }
    ::_exit(status);
  }
  channel.close_worker_socket();
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) REQUIRE(errno == EINTR);
  return status;
}

bool wait_readable(int fd, milliseconds limit) {
  pollfd pfd{fd, POLLIN, 0};
  int r;
  while ((r = ::poll(&pfd, 1, static_cast<int>(limit.count()))) < 0 && errno == EINTR) {
  }
  return r > 0;
}

int echo_until_eof(WorkerChannel& worker) {
  while (std::optional<std::string> message = worker.receive()) {
    if (worker.send(*message) != SendResult::kAccepted) return 1;
  }
  return worker.status() == ChannelStatus::kPeerGone ? 0 : 2;
}

// The same, as a worker with an event loop of its own: try_receive() until nothing is left, then
// poll() the doorbell.
int echo_from_a_loop(WorkerChannel& worker) {
  for (;;) {
    while (std::optional<std::string> message = worker.try_receive()) {
      if (worker.send(*message) != SendResult::kAccepted) return 1;
    }
    if (worker.status() != ChannelStatus::kOpen) return worker.status() == ChannelStatus::kPeerGone ? 0 : 2;
    pollfd readable{worker.fd(), POLLIN, 0};
    const int ready = ::poll(&readable, 1, 10000);
    if (ready == 0) return 4;  // a lost wake-up fails the test instead of hanging it
    if (ready < 0 && errno != EINTR) return 3;
  }
}

std::string random_bytes(std::mt19937_64& rng, std::size_t size) {
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return hash;
}

// [seq u64][fnv1a of the rest u64][random bytes]: a torn or mixed-up message fails verify_stamped().
std::string stamped(std::uint64_t seq, std::size_t body_size, std::mt19937_64& rng) {
  const std::string body = random_bytes(rng, body_size);
  const std::uint64_t sum = fnv1a(body);
  std::string message(16, '\0');
  std::memcpy(message.data(), &seq, 8);
  std::memcpy(message.data() + 8, &sum, 8);
  return message + body;
}

std::optional<std::uint64_t> verify_stamped(std::string_view message) {
  if (message.size() < 16) return std::nullopt;
  std::uint64_t seq, sum;
  std::memcpy(&seq, message.data(), 8);
  std::memcpy(&sum, message.data() + 8, 8);
  if (fnv1a(message.substr(16)) != sum) return std::nullopt;
  return seq;
}

// Runs the supervisor's side until `want` messages arrived or the channel ended.
struct Collected {
  std::vector<std::string> messages;
  ChannelStatus status = ChannelStatus::kOpen;
  bool hung = false;
};
Collected collect(SupervisorChannel& channel, std::size_t want) {
  Collected got;
  while (got.messages.size() < want && got.status == ChannelStatus::kOpen) {
    if (!wait_readable(channel.fd(), kHangLimit)) {
      got.hung = true;
      break;
    }
    SupervisorChannel::Received r = channel.on_readable();
    for (std::string& m : r.messages) got.messages.push_back(std::move(m));
    got.status = r.status;
  }
  return got;
}

// The test's own view of a segment, to play a buggy peer that scribbles on it.
struct RawSegment {
  explicit RawSegment(const std::string& name)
      : shm(boost::interprocess::open_only, name.c_str(), boost::interprocess::read_write),
        region(shm, boost::interprocess::read_write) {}
  char* begin() { return static_cast<char*>(region.get_address()); }
  char* end() { return begin() + region.get_size(); }
  // Where the frame carrying `payload` starts (its header precedes the payload).
  char* frame_of(const std::string& payload) {
    char* at = std::search(begin(), end(), payload.begin(), payload.end());
    REQUIRE(at != end());
    REQUIRE(at - begin() >= static_cast<std::ptrdiff_t>(cbm::kFrameHeaderBytes));
    return at - cbm::kFrameHeaderBytes;
  }
  boost::interprocess::shared_memory_object shm;
  boost::interprocess::mapped_region region;
};

// A worker living in this process, for tests that need no concurrency.
WorkerChannel attach_here(SupervisorChannel& channel) {
  const int fd = ::dup(channel.worker_socket_fd());
  REQUIRE(fd >= 0);
  channel.close_worker_socket();
  return WorkerChannel(channel.name(), fd);
}

char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

}  // namespace

TEST_CASE("messages round-trip both ways in order, from empty to many times the ring", "[shm]") {
  const ChannelOptions options;  // the defaults the supervisor uses
  const std::size_t cap = options.ring_capacity;
  std::optional<SupervisorChannel> channel(std::in_place, fresh_name(), options);
  const bool from_a_loop = GENERATE(false, true);
  INFO((from_a_loop ? "try_receive and poll" : "receive"));
  const pid_t pid = spawn_worker(*channel, from_a_loop ? echo_from_a_loop : echo_until_eof);

  std::mt19937_64 rng(1);
  std::vector<std::string> sent;
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, cap - cbm::kFrameHeaderBytes, cap, 3 * cap,
                                 std::size_t{5} << 20, std::size_t{1}}) {
    sent.push_back(random_bytes(rng, size));
    REQUIRE(channel->try_send(sent.back()) == SendResult::kAccepted);
  }

  Collected got = collect(*channel, sent.size());
  REQUIRE_FALSE(got.hung);
  REQUIRE(got.status == ChannelStatus::kOpen);
  REQUIRE(got.messages.size() == sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    INFO("message " << i << " of " << sent[i].size() << " bytes");
    CHECK(got.messages[i].size() == sent[i].size());
    CHECK((got.messages[i] == sent[i]));
  }
  CHECK(channel->queued_messages() == 0);

  channel.reset();  // the worker reads EOF and exits 0
  const int status = wait_exit(pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a worker SIGKILLed at any instant never blocks the supervisor or hands it a torn message",
          "[shm]") {
  ChannelOptions options;
  options.ring_capacity = 16 * 1024;  // small, so most messages are written and read in pieces
  const std::size_t cap = options.ring_capacity;
  std::mt19937_64 rng(2);
  std::size_t replies_seen = 0;
  Clock::duration slowest_call{};
  const auto timed = [&](auto&& call) {
    const auto start = Clock::now();
    auto result = call();
    slowest_call = std::max(slowest_call, Clock::now() - start);
    return result;
  };

  for (int kill_round = 0; kill_round < 50; ++kill_round) {
    SupervisorChannel channel(fresh_name(1), options);
    const pid_t pid = spawn_worker(channel, [cap](WorkerChannel& worker) {
      std::mt19937_64 child_rng(static_cast<std::uint64_t>(::getpid()));
      while (std::optional<std::string> task = worker.receive()) {
        const std::optional<std::uint64_t> seq = verify_stamped(*task);
        if (!seq) return 3;
        const std::string reply = stamped(*seq, child_rng() % (3 * cap), child_rng);
        if (worker.send(reply) != SendResult::kAccepted) return 0;
      }
      return 0;
    });

    // The kill lands 0-1 ms after a random number (0-5) of replies: mid-stream, wherever the worker is
    // (reading a task, writing a reply, waiting on either).
    const std::uint64_t kill_after_replies = rng() % 6;
    const auto jitter = std::chrono::microseconds(rng() % 1000);
    std::optional<Clock::time_point> kill_at;
    bool killed = false;
    std::uint64_t next_task = 0;
    std::uint64_t next_reply = 0;
    ChannelStatus status = ChannelStatus::kOpen;
    while (status == ChannelStatus::kOpen) {
      while (channel.queued_messages() < 2) {
        std::string task = stamped(next_task++, rng() % (3 * cap), rng);
        REQUIRE(timed([&] { return channel.try_send(std::move(task)); }) == SendResult::kAccepted);
      }
      const auto now = Clock::now();
      if (!kill_at && next_reply >= kill_after_replies) kill_at = now + jitter;
      if (!killed && kill_at && now >= *kill_at) {
        REQUIRE(::kill(pid, SIGKILL) == 0);
        killed = true;
      }
      const milliseconds limit =
          killed || !kill_at ? kHangLimit : std::chrono::ceil<milliseconds>(*kill_at - now);
      if (!wait_readable(channel.fd(), limit)) {
        REQUIRE((kill_at && !killed));  // else a reply, or the EOF after the kill, never came
        continue;
      }
      SupervisorChannel::Received r = timed([&] { return channel.on_readable(); });
      for (const std::string& reply : r.messages) {
        const std::optional<std::uint64_t> seq = verify_stamped(reply);
        REQUIRE(seq.has_value());
        REQUIRE(*seq == next_reply);
        ++next_reply;
      }
      status = r.status;
    }
    REQUIRE(killed);
    REQUIRE(status == ChannelStatus::kPeerGone);
    CHECK(timed([&] { return channel.try_send("after death"); }) == SendResult::kChannelClosed);
    const int exit_status = wait_exit(pid);
    REQUIRE(WIFSIGNALED(exit_status));
    CHECK(WTERMSIG(exit_status) == SIGKILL);
    replies_seen += next_reply;
  }
  CHECK(replies_seen > 0);
  CHECK(slowest_call < std::chrono::seconds(1));  // a blocked call would never have returned at all
}

TEST_CASE("a worker SIGKILLed while blocked in receive leaves try_send working and the slot reusable",
          "[shm]") {
  ChannelOptions options;
  options.ring_capacity = 8 * 1024;
  std::optional<SupervisorChannel> channel(std::in_place, cbm::channel_name(::getuid(), ::getpid(), 7, 1000),
                                           options);
  const pid_t pid = spawn_worker(*channel, [](WorkerChannel& worker) {
    if (worker.send("ready") != SendResult::kAccepted) return 1;
    return worker.receive() ? 2 : 0;
  });
  Collected ready = collect(*channel, 1);
  REQUIRE(ready.messages == std::vector<std::string>{"ready"});

  // After "ready" the worker's next stop is the poll() inside receive(); see it asleep there.
  const auto deadline = Clock::now() + kHangLimit;
  while (process_state(pid) != 'S' && Clock::now() < deadline) std::this_thread::yield();
  REQUIRE(process_state(pid) == 'S');
  REQUIRE(::kill(pid, SIGKILL) == 0);
  const int exit_status = wait_exit(pid);
  REQUIRE(WIFSIGNALED(exit_status));

  // More than the ring holds: part stays in the outbox. Nothing waits for the dead reader.
  std::mt19937_64 rng(3);
  const auto start = Clock::now();
  for (int i = 0; i < 4; ++i) {
    REQUIRE(channel->try_send(random_bytes(rng, options.ring_capacity)) == SendResult::kAccepted);
  }
  CHECK(Clock::now() - start < std::chrono::seconds(1));
  CHECK(channel->queued_messages() > 0);

  REQUIRE(wait_readable(channel->fd(), kHangLimit));
  SupervisorChannel::Received r = channel->on_readable();
  CHECK(r.messages.empty());
  REQUIRE(r.status == ChannelStatus::kPeerGone);
  CHECK(channel->try_send("x") == SendResult::kChannelClosed);

  const std::string old_name = channel->name();
  channel.reset();
  CHECK_FALSE(segment_exists(old_name));

  channel.emplace(cbm::channel_name(::getuid(), ::getpid(), 7, 1001), options);
  const pid_t replacement = spawn_worker(*channel, echo_until_eof);
  REQUIRE(channel->try_send("hello again") == SendResult::kAccepted);
  Collected echo = collect(*channel, 1);
  REQUIRE(echo.messages == std::vector<std::string>{"hello again"});
  channel.reset();
  const int replacement_status = wait_exit(replacement);
  REQUIRE(WIFEXITED(replacement_status));
  CHECK(WEXITSTATUS(replacement_status) == 0);
}

TEST_CASE("try_send never blocks, however long the worker leaves its doorbell and ring unread", "[shm]") {
  SupervisorChannel channel(fresh_name(9));
  WorkerChannel idle_worker = attach_here(channel);
  // Empty messages: one ring publish, so one doorbell byte, each, far more than a socket buffer holds.
  constexpr int kMessages = 100000;
  const auto start = Clock::now();
  for (int i = 0; i < kMessages; ++i) REQUIRE(channel.try_send(std::string()) == SendResult::kAccepted);
  CHECK(Clock::now() - start < std::chrono::seconds(5));
  CHECK(channel.queued_messages() > 0);  // the rest waits in the outbox, not in a blocked call
  REQUIRE(idle_worker.receive() == std::string());
}

TEST_CASE("garbage in the segment is reported as a corrupt channel, without a crash or a huge allocation",
          "[shm]") {
  const ChannelOptions options;
  SupervisorChannel channel(fresh_name(2), options);
  WorkerChannel worker = attach_here(channel);
  RawSegment raw(channel.name());
  const std::string payload = "result payload marker 6b1f0c";

  SECTION("a frame header that fails its check word, read by the supervisor") {
    REQUIRE(worker.send(payload) == SendResult::kAccepted);
    std::memset(raw.frame_of(payload), 0xA5, cbm::kFrameHeaderBytes);
  }
  SECTION("a well-formed frame header claiming 1 TiB, read by the supervisor") {
    REQUIRE(worker.send(payload) == SendResult::kAccepted);
    const std::uint64_t header[2] = {std::uint64_t{1} << 40, (std::uint64_t{1} << 40) ^ cbm::kFrameCheck};
    std::memcpy(raw.frame_of(payload), header, sizeof header);
  }
  SECTION("ring counters overwritten with garbage") {
    REQUIRE(worker.send(payload) == SendResult::kAccepted);
    char* frame = raw.frame_of(payload);
    std::memset(raw.begin(), 0xA5, static_cast<std::size_t>(frame - raw.begin()));
  }

  REQUIRE(wait_readable(channel.fd(), kHangLimit));
  SupervisorChannel::Received r = channel.on_readable();
  CHECK(r.messages.empty());
  CHECK(r.status == ChannelStatus::kCorrupt);
  CHECK(channel.status() == ChannelStatus::kCorrupt);
  CHECK(channel.try_send("more work") == SendResult::kChannelClosed);
}

TEST_CASE("a corrupt frame sent to a worker ends its receive() with kCorrupt", "[shm]") {
  SupervisorChannel channel(fresh_name(3));
  WorkerChannel worker = attach_here(channel);
  RawSegment raw(channel.name());
  const std::string payload = "task payload marker 93d2aa";
  REQUIRE(channel.try_send(payload) == SendResult::kAccepted);
  const std::uint64_t header[2] = {std::uint64_t{1} << 62, 12345};
  std::memcpy(raw.frame_of(payload), header, sizeof header);

  CHECK_FALSE(worker.receive().has_value());
  CHECK(worker.status() == ChannelStatus::kCorrupt);
  CHECK(worker.send("result") == SendResult::kChannelClosed);
}

TEST_CASE("messages above max_message_size are refused whole, never truncated", "[shm]") {
  ChannelOptions options;
  options.max_message_size = 4096;
  SupervisorChannel channel(fresh_name(4), options);
  WorkerChannel worker = attach_here(channel);
  CHECK(channel.try_send(std::string(4097, 'x')) == SendResult::kTooLarge);
  CHECK(worker.send(std::string(4097, 'y')) == SendResult::kTooLarge);
  CHECK(channel.queued_messages() == 0);
  REQUIRE(channel.try_send(std::string(4096, 'x')) == SendResult::kAccepted);
  CHECK(worker.receive() == std::string(4096, 'x'));
}

TEST_CASE("a channel is never created over an existing segment, nor attached to a foreign one", "[shm]") {
  SupervisorChannel channel(fresh_name(5));
  CHECK_THROWS_WITH(SupervisorChannel(channel.name()), Catch::Contains("already exists"));

  const std::string foreign = fresh_name(5);
  {
    boost::interprocess::shared_memory_object shm(boost::interprocess::create_only, foreign.c_str(),
                                                  boost::interprocess::read_write);
    shm.truncate(1 << 20);
  }
  const auto bells = cbm::Doorbell::make_pair();
  CHECK_THROWS_WITH(WorkerChannel(foreign, ::dup(bells.second.fd())),
                    Catch::Contains("no valid channel header"));
  boost::interprocess::shared_memory_object::remove(foreign.c_str());
  CHECK_THROWS_AS(SupervisorChannel(fresh_name(5), ChannelOptions{16, 1024}), std::invalid_argument);
}

TEST_CASE("sweep removes the segments of a dead supervisor and keeps ours, segments are mode 0600", "[shm]") {
  // Names under a uid no one runs as: a real supervisor sweeping concurrently (parallel ctest) cannot
  // take this test's orphan first, and the count below is exact.
  const uid_t test_uid = ::getuid() + 104729;
  cbm::sweep_stale_channels(test_uid);  // leftovers of an earlier, interrupted run

  // A supervisor that dies without running destructors, as under SIGKILL.
  const pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) {
    try {
      SupervisorChannel orphan(cbm::channel_name(test_uid, ::getpid(), 0, 0));
      ::_exit(0);
    } catch (...) {
      ::_exit(1);
    }
  }
  const int dead_status = wait_exit(dead);
  REQUIRE(WIFEXITED(dead_status));
  REQUIRE(WEXITSTATUS(dead_status) == 0);
  const std::string orphan_name = cbm::channel_name(test_uid, dead, 0, 0);
  REQUIRE(segment_exists(orphan_name));

  const mode_t old_umask = ::umask(0);  // the mode must not depend on the caller's umask
  SupervisorChannel ours(cbm::channel_name(test_uid, ::getpid(), 6, 0));
  ::umask(old_umask);
  struct stat st {};
  REQUIRE(::stat(("/dev/shm/" + ours.name()).c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat(("/dev/shm/" + orphan_name).c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

  CHECK(cbm::sweep_stale_channels(test_uid) == 1);
  CHECK_FALSE(segment_exists(orphan_name));
  CHECK(segment_exists(ours.name()));
}

TEST_CASE("a producer blocked for space always resumes when the consumer drains: 10,000 messages", "[shm]") {
  ChannelOptions options;
  options.ring_capacity = 4096;  // smaller than most messages: both producers wait for space constantly
  std::optional<SupervisorChannel> channel(std::in_place, fresh_name(8), options);
  const pid_t pid = spawn_worker(*channel, echo_until_eof);

  std::mt19937_64 rng(6);
  constexpr std::uint64_t kMessages = 10000;
  constexpr std::uint64_t kInFlight = 8;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  while (received < kMessages) {
    while (sent < kMessages && sent - received < kInFlight) {
      REQUIRE(channel->try_send(stamped(sent++, rng() % (3 * options.ring_capacity), rng)) ==
              SendResult::kAccepted);
    }
    INFO("sent " << sent << ", received " << received << ", queued " << channel->queued_messages());
    REQUIRE(wait_readable(channel->fd(), kHangLimit));  // else a wake-up was lost
    SupervisorChannel::Received r = channel->on_readable();
    REQUIRE(r.status == ChannelStatus::kOpen);
    for (const std::string& echo : r.messages) {
      REQUIRE(verify_stamped(echo) == std::optional<std::uint64_t>(received));
      ++received;
    }
  }
  CHECK(channel->queued_messages() == 0);
  channel.reset();  // the worker reads EOF and exits 0
  const int status = wait_exit(pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
