#include "shm_channel.hpp"

#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <new>
#include <stdexcept>
#include <utility>

#include "doorbell.hpp"

namespace cbm {
namespace {

namespace bip = boost::interprocess;

constexpr std::uint64_t kSegmentMagic = 0x6362'6d2e'7368'6d31ULL;  // "cbm.shm1"
constexpr std::uint32_t kSegmentVersion = 1;
constexpr std::size_t kMinRingCapacity = 1024;
constexpr std::size_t kMaxRingCapacity = std::size_t{1} << 30;
// A frame's length is believed only up to max_message_size; memory for it is committed as bytes arrive,
// beyond this first step, so a length from a peer that then dies costs little.
constexpr std::size_t kEagerReserve = 1 << 20;
// Not hardware_destructive_interference_size: g++ warns that its value may change between versions.
constexpr std::size_t kCacheLine = 64;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "ring counters are shared between processes and must not hide a lock");

// The only shared mutable state. Each counter has a single writer and lives on its own cache line.
struct RingCounters {
  alignas(kCacheLine) std::atomic<std::uint64_t> head{0};  // bytes consumed; written by the consumer
  alignas(kCacheLine) std::atomic<std::uint64_t> tail{0};  // bytes published; written by the producer
};

// Start of the segment; the two rings' data follow it: to_worker, then to_supervisor.
struct SegmentHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t ring_capacity;
  std::uint64_t max_message_size;
  RingCounters to_worker;
  RingCounters to_supervisor;
};
constexpr std::size_t kDataOffset = sizeof(SegmentHeader);
static_assert(kDataOffset % kCacheLine == 0);

std::size_t segment_size(std::uint64_t ring_capacity) {
  return kDataOffset + 2 * ring_capacity;
}

// Producer's view of a ring. Its tail lives here, not in shared memory, so the consumer cannot move it.
class RingWriter {
 public:
  RingWriter() = default;
  RingWriter(RingCounters* counters, std::byte* data, std::uint64_t capacity)
      : counters_(counters),
        data_(data),
        capacity_(capacity),
        tail_(counters->tail.load(std::memory_order_relaxed)),
        published_(tail_) {}

  // Bytes that may be written now; nullopt when the consumer's counter is impossible.
  std::optional<std::uint64_t> free_space() const {
    // acquire: the consumer's reads of the bytes it released happen before we overwrite them.
    const std::uint64_t head = counters_->head.load(std::memory_order_acquire);
    if (head > tail_ || tail_ - head > capacity_) return std::nullopt;
    return capacity_ - (tail_ - head);
  }

  // Precondition: n <= free_space().
  void write(const void* src, std::uint64_t n) {
    if (n == 0) return;  // src may be null (an empty string_view)
    const std::uint64_t pos = tail_ % capacity_;
    const std::uint64_t first = std::min(n, capacity_ - pos);
    std::memcpy(data_ + pos, src, first);
    std::memcpy(data_, static_cast<const std::byte*>(src) + first, n - first);
    tail_ += n;
  }

  // Returns whether there was anything to publish.
  bool publish() {
    if (tail_ == published_) return false;
    counters_->tail.store(tail_, std::memory_order_release);
    published_ = tail_;
    return true;
  }

 private:
  RingCounters* counters_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
  std::uint64_t tail_ = 0;
  std::uint64_t published_ = 0;
};

// Consumer's view of a ring. Its head lives here, not in shared memory, so the producer cannot move it.
class RingReader {
 public:
  RingReader() = default;
  RingReader(RingCounters* counters, const std::byte* data, std::uint64_t capacity)
      : counters_(counters),
        data_(data),
        capacity_(capacity),
        head_(counters->head.load(std::memory_order_relaxed)),
        released_(head_) {}

  // Published bytes not yet read; nullopt when the producer's counter is impossible.
  std::optional<std::uint64_t> readable() const {
    const std::uint64_t tail = counters_->tail.load(std::memory_order_acquire);
    if (tail < head_ || tail - head_ > capacity_) return std::nullopt;
    return tail - head_;
  }

  // Precondition: n <= readable().
  void read(void* dst, std::uint64_t n) {
    if (n == 0) return;
    const std::uint64_t pos = head_ % capacity_;
    const std::uint64_t first = std::min(n, capacity_ - pos);
    std::memcpy(dst, data_ + pos, first);
    std::memcpy(static_cast<std::byte*>(dst) + first, data_, n - first);
    head_ += n;
  }

  // Hands the bytes read so far back to the producer. Returns whether there were any.
  bool release() {
    if (head_ == released_) return false;
    counters_->head.store(head_, std::memory_order_release);
    released_ = head_;
    return true;
  }

 private:
  RingCounters* counters_ = nullptr;
  const std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
  std::uint64_t head_ = 0;
  std::uint64_t released_ = 0;
};

std::uint64_t framed_size(std::string_view message) {
  return kFrameHeaderBytes + message.size();
}

// Writes the framed bytes of `message` from `offset` on, at most `budget` of them. Returns the bytes
// written; the frame is complete when offset + result == framed_size(message).
std::uint64_t write_frame_part(RingWriter& ring, std::string_view message, std::uint64_t offset,
                               std::uint64_t budget) {
  std::uint64_t written = 0;
  if (offset < kFrameHeaderBytes) {
    const std::uint64_t length = message.size();
    const std::array<std::uint64_t, 2> header{length, length ^ kFrameCheck};
    static_assert(sizeof header == kFrameHeaderBytes);
    const std::uint64_t n = std::min(kFrameHeaderBytes - offset, budget);
    ring.write(reinterpret_cast<const std::byte*>(header.data()) + offset, n);
    written += n;
  }
  if (offset + written >= kFrameHeaderBytes && budget > written) {
    const std::uint64_t body_offset = offset + written - kFrameHeaderBytes;
    const std::uint64_t n = std::min(message.size() - body_offset, budget - written);
    ring.write(message.data() + body_offset, n);
    written += n;
  }
  return written;
}

// Reassembles frames from a byte stream that arrives in pieces of any size.
class FrameDecoder {
 public:
  FrameDecoder() = default;
  explicit FrameDecoder(std::uint64_t max_message_size) : max_message_size_(max_message_size) {}

  // Reads `available` bytes from `ring`, appending each completed message to `out`.
  // Returns false, and stops reading, at a frame header that is not valid.
  template <typename Container>
  bool consume(RingReader& ring, std::uint64_t available, Container& out) {
    while (available > 0) {
      if (header_bytes_ < kFrameHeaderBytes) {
        const std::uint64_t n = std::min<std::uint64_t>(kFrameHeaderBytes - header_bytes_, available);
        ring.read(reinterpret_cast<std::byte*>(header_.data()) + header_bytes_, n);
        header_bytes_ += n;
        available -= n;
        if (header_bytes_ < kFrameHeaderBytes) return true;
        if (!start_body()) return false;
      }
      const std::uint64_t n = std::min<std::uint64_t>(header_[0] - body_.size(), available);
      const std::size_t have = body_.size();
      body_.resize(have + n);
      ring.read(body_.data() + have, n);
      available -= n;
      if (body_.size() == header_[0]) {
        out.push_back(std::move(body_));
        body_ = std::string();
        header_bytes_ = 0;
      }
    }
    return true;
  }

 private:
  bool start_body() {
    const std::uint64_t length = header_[0];
    if ((length ^ kFrameCheck) != header_[1] || length > max_message_size_) return false;
    body_.reserve(std::min<std::uint64_t>(length, kEagerReserve));
    return true;
  }

  std::uint64_t max_message_size_ = 0;
  std::array<std::uint64_t, 2> header_{};  // length, check
  std::size_t header_bytes_ = 0;
  std::string body_;
};

void validate(const ChannelOptions& options) {
  if (options.ring_capacity < kMinRingCapacity || options.ring_capacity > kMaxRingCapacity) {
    throw std::invalid_argument("shm channel ring_capacity must be within [" +
                                std::to_string(kMinRingCapacity) + ", " + std::to_string(kMaxRingCapacity) +
                                "] bytes");
  }
  if (options.max_message_size > std::string().max_size()) {
    throw std::invalid_argument("shm channel max_message_size exceeds what a std::string can hold");
  }
}

// Removes the segment's name when the channel that created it goes away.
class SegmentNameOwner {
 public:
  SegmentNameOwner() = default;
  explicit SegmentNameOwner(std::string name) : name_(std::move(name)) {}
  SegmentNameOwner(SegmentNameOwner&& other) noexcept : name_(std::exchange(other.name_, {})) {}
  SegmentNameOwner& operator=(SegmentNameOwner&& other) noexcept {
    std::swap(name_, other.name_);
    return *this;
  }
  ~SegmentNameOwner() {
    if (!name_.empty()) bip::shared_memory_object::remove(name_.c_str());
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

SegmentHeader* header_of(bip::mapped_region& region) {
  return std::launder(reinterpret_cast<SegmentHeader*>(region.get_address()));
}
std::byte* to_worker_data(bip::mapped_region& region) {
  return static_cast<std::byte*>(region.get_address()) + kDataOffset;
}
std::byte* to_supervisor_data(bip::mapped_region& region, std::uint64_t capacity) {
  return to_worker_data(region) + capacity;
}

}  // namespace

std::string channel_name(uid_t uid, pid_t supervisor_pid, unsigned slot, std::uint64_t generation) {
  return "cbm." + std::to_string(uid) + "." + std::to_string(supervisor_pid) + "." + std::to_string(slot) +
         "." + std::to_string(generation);
}

std::size_t sweep_stale_channels(uid_t uid) {
  const std::string prefix = "cbm." + std::to_string(uid) + ".";
  std::size_t removed = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/dev/shm", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (!file.starts_with(prefix)) continue;
    const char* first = file.data() + prefix.size();
    const char* last = file.data() + file.size();
    pid_t pid = 0;
    const auto [rest, err] = std::from_chars(first, last, pid);
    if (err != std::errc() || rest == first || rest == last || *rest != '.' || pid <= 0) continue;
    // EPERM means alive but not ours: only ESRCH proves the owner is gone.
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (bip::shared_memory_object::remove(file.c_str())) ++removed;
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------------------

struct SupervisorChannel::Impl {
  SegmentNameOwner owner;
  bip::mapped_region region;
  ChannelOptions options;
  Doorbell bell;
  Doorbell worker_end;
  RingWriter to_worker;
  RingReader from_worker;
  FrameDecoder decoder;
  std::deque<std::string> outbox;
  std::uint64_t front_offset = 0;  // framed bytes of outbox.front() already in the ring
  ChannelStatus status = ChannelStatus::kOpen;

  // Copies as much of the outbox as the ring has room for now; the room is sampled once, which bounds
  // the work. Returns whether anything was published.
  bool flush() {
    if (outbox.empty() || status != ChannelStatus::kOpen) return false;
    const std::optional<std::uint64_t> space = to_worker.free_space();
    if (!space) {
      status = ChannelStatus::kCorrupt;
      return false;
    }
    std::uint64_t budget = *space;
    while (!outbox.empty() && budget > 0) {
      const std::uint64_t n = write_frame_part(to_worker, outbox.front(), front_offset, budget);
      budget -= n;
      front_offset += n;
      if (front_offset == framed_size(outbox.front())) {
        outbox.pop_front();
        front_offset = 0;
      }
    }
    return to_worker.publish();
  }
};

SupervisorChannel::SupervisorChannel(const std::string& name, const ChannelOptions& options)
    : impl_(std::make_unique<Impl>()) {
  validate(options);
  Impl& s = *impl_;
  s.options = options;
  try {
    bip::permissions owner_only(0600);
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, owner_only);
    s.owner = SegmentNameOwner(name);
    shm.truncate(static_cast<bip::offset_t>(segment_size(options.ring_capacity)));
    s.region = bip::mapped_region(shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::already_exists_error) {
      throw std::runtime_error("shm channel segment '" + name +
                               "' already exists (left by a dead run? see sweep_stale_channels)");
    }
    throw std::runtime_error("cannot create shm channel segment '" + name + "': " + e.what());
  }

  auto* header = new (s.region.get_address()) SegmentHeader{};
  header->version = kSegmentVersion;
  header->ring_capacity = options.ring_capacity;
  header->max_message_size = options.max_message_size;
  header->magic = kSegmentMagic;

  s.to_worker = RingWriter(&header->to_worker, to_worker_data(s.region), options.ring_capacity);
  s.from_worker = RingReader(&header->to_supervisor, to_supervisor_data(s.region, options.ring_capacity),
                             options.ring_capacity);
  s.decoder = FrameDecoder(options.max_message_size);
  std::tie(s.bell, s.worker_end) = Doorbell::make_pair();
}

SupervisorChannel::SupervisorChannel(SupervisorChannel&&) noexcept = default;
SupervisorChannel& SupervisorChannel::operator=(SupervisorChannel&&) noexcept = default;
SupervisorChannel::~SupervisorChannel() = default;

const std::string& SupervisorChannel::name() const {
  return impl_->owner.name();
}
int SupervisorChannel::fd() const {
  return impl_->bell.fd();
}
int SupervisorChannel::worker_socket_fd() const {
  return impl_->worker_end.fd();
}
void SupervisorChannel::close_worker_socket() {
  impl_->worker_end.close();
}
ChannelStatus SupervisorChannel::status() const {
  return impl_->status;
}
std::size_t SupervisorChannel::queued_messages() const {
  return impl_->outbox.size();
}

SendResult SupervisorChannel::try_send(std::string message) {
  Impl& s = *impl_;
  if (s.status != ChannelStatus::kOpen) return SendResult::kChannelClosed;
  if (message.size() > s.options.max_message_size) return SendResult::kTooLarge;
  s.outbox.push_back(std::move(message));
  if (s.flush()) s.bell.ring();
  return s.status == ChannelStatus::kOpen ? SendResult::kAccepted : SendResult::kChannelClosed;
}

SupervisorChannel::Received SupervisorChannel::on_readable() {
  Impl& s = *impl_;
  Received received{{}, s.status};
  if (s.status != ChannelStatus::kOpen) return received;

  // Drain before looking at the rings: any change made after this point rings again.
  const bool worker_alive = s.bell.drain();
  bool changed = false;
  const std::optional<std::uint64_t> available = s.from_worker.readable();
  if (!available || !s.decoder.consume(s.from_worker, *available, received.messages)) {
    s.status = received.status = ChannelStatus::kCorrupt;
    return received;
  }
  changed |= s.from_worker.release();
  if (!worker_alive) {
    s.status = received.status = ChannelStatus::kPeerGone;
    return received;
  }
  changed |= s.flush();
  if (changed) s.bell.ring();
  received.status = s.status;
  return received;
}

// ---------------------------------------------------------------------------------------------------------

struct WorkerChannel::Impl {
  bip::mapped_region region;
  Doorbell bell;
  std::uint64_t max_message_size = 0;
  RingReader from_supervisor;
  RingWriter to_supervisor;
  FrameDecoder decoder;
  std::deque<std::string> inbox;
  ChannelStatus status = ChannelStatus::kOpen;
};

WorkerChannel::WorkerChannel(const std::string& name, int socket_fd) : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.bell = Doorbell(socket_fd);
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
    w.region = bip::mapped_region(shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    throw std::runtime_error("cannot open shm channel segment '" + name + "': " + e.what());
  }
  if (w.region.get_size() < sizeof(SegmentHeader)) {
    throw std::runtime_error("shm channel segment '" + name + "' is too small to be a channel");
  }
  SegmentHeader* header = header_of(w.region);
  const std::uint64_t capacity = header->ring_capacity;
  if (header->magic != kSegmentMagic || header->version != kSegmentVersion || capacity < kMinRingCapacity ||
      capacity > kMaxRingCapacity || segment_size(capacity) > w.region.get_size() ||
      header->max_message_size > std::string().max_size()) {
    throw std::runtime_error("shm channel segment '" + name + "' has no valid channel header");
  }
  w.max_message_size = header->max_message_size;
  w.from_supervisor = RingReader(&header->to_worker, to_worker_data(w.region), capacity);
  w.to_supervisor = RingWriter(&header->to_supervisor, to_supervisor_data(w.region, capacity), capacity);
  w.decoder = FrameDecoder(w.max_message_size);
}

WorkerChannel::WorkerChannel(WorkerChannel&&) noexcept = default;
WorkerChannel& WorkerChannel::operator=(WorkerChannel&&) noexcept = default;
WorkerChannel::~WorkerChannel() = default;

ChannelStatus WorkerChannel::status() const {
  return impl_->status;
}

SendResult WorkerChannel::send(std::string_view message) {
  Impl& w = *impl_;
  if (w.status != ChannelStatus::kOpen) return SendResult::kChannelClosed;
  if (message.size() > w.max_message_size) return SendResult::kTooLarge;
  std::uint64_t offset = 0;
  for (;;) {
    const std::optional<std::uint64_t> space = w.to_supervisor.free_space();
    if (!space) {
      w.status = ChannelStatus::kCorrupt;
      return SendResult::kChannelClosed;
    }
    if (*space > 0) {
      offset += write_frame_part(w.to_supervisor, message, offset, *space);
      w.to_supervisor.publish();
      w.bell.ring();
      if (offset == framed_size(message)) return SendResult::kAccepted;
      continue;
    }
    if (!w.bell.wait()) {
      w.status = ChannelStatus::kPeerGone;
      return SendResult::kChannelClosed;
    }
  }
}

int WorkerChannel::fd() const { return impl_->bell.fd(); }

std::optional<std::string> WorkerChannel::try_receive() {
  Impl& w = *impl_;
  if (w.inbox.empty() && w.status == ChannelStatus::kOpen) {
    const bool supervisor_alive = w.bell.drain();  // before looking: a later change rings again
    const std::optional<std::uint64_t> available = w.from_supervisor.readable();
    if (!available || !w.decoder.consume(w.from_supervisor, *available, w.inbox)) {
      w.status = ChannelStatus::kCorrupt;
    } else if (w.from_supervisor.release()) {
      w.bell.ring();  // the supervisor may be holding an outbox for exactly this room
    }
    if (!supervisor_alive && w.status == ChannelStatus::kOpen) w.status = ChannelStatus::kPeerGone;
  }
  if (w.inbox.empty()) return std::nullopt;
  std::string message = std::move(w.inbox.front());
  w.inbox.pop_front();
  return message;
}

// try_receive() drains the doorbell before it looks at the ring: a message published after that look
// rings again, so the wait cannot miss it.
std::optional<std::string> WorkerChannel::receive() {
  for (;;) {
    if (auto message = try_receive()) return message;
    if (impl_->status != ChannelStatus::kOpen) return std::nullopt;
    if (!impl_->bell.wait()) impl_->status = ChannelStatus::kPeerGone;
  }
}

}  // namespace cbm
