#include "journal.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "atomic_file.hpp"
#include "fnv1a.hpp"
#include "json_reader.hpp"
#include "result_codec.hpp"

namespace cbm {
namespace {

constexpr std::string_view kMagic = "concurrent_bigmodel journal";
constexpr int kVersion = 1;

std::string fnv1a_hex(std::string_view s) {
  const std::uint64_t h = fnv1a64(s);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string header_line(const JournalSettings& s) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("journal");
  w.String(kMagic.data(), static_cast<rapidjson::SizeType>(kMagic.size()));
  w.Key("version");
  w.Int(kVersion);
  w.Key("chat_model");
  w.String(s.chat_model.c_str());
  w.Key("tool_model");
  w.String(s.tool_model.c_str());
  w.Key("search");
  w.Bool(s.search);
  w.Key("prompts_digest");
  w.String(s.prompts_digest.c_str());
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

std::optional<JournalSettings> parse_header(const std::string& line) {
  rapidjson::Document d;
  d.Parse(line.c_str());
  if (d.HasParseError() || !d.IsObject()) return std::nullopt;
  std::string error;
  JsonReader r(d, "", error);
  std::string magic;
  int version = 0;
  JournalSettings s;
  r.string("journal", magic);
  r.integer("version", version);
  r.string("chat_model", s.chat_model);
  r.string("tool_model", s.tool_model);
  r.boolean("search", s.search);
  r.string("prompts_digest", s.prompts_digest);
  if (!error.empty() || magic != kMagic || version != kVersion) return std::nullopt;
  return s;
}

[[noreturn]] void fail_errno(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

void write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(what);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

int open_append(const std::filesystem::path& path, int extra_flags) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | extra_flags, 0644);
  if (fd < 0) fail_errno("cannot open journal '" + path.string() + "'");
  return fd;
}

// Calls `on_line` for each line of the file after the header, without its '\n' (empty lines skipped).
// A last line without '\n' (cut short by a crash or a failed write) is not a line. Reads in large
// blocks: no copy of a line unless it spans two of them.
void read_record_lines(const std::filesystem::path& path,
                       const std::function<void(std::string_view)>& on_line) {
  const UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) fail_errno("cannot read journal '" + path.string() + "'");
  std::vector<char> buf(1 << 20);
  std::string split;  // a line that spans two reads
  bool header = true;
  for (;;) {
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("cannot read journal '" + path.string() + "'");
    if (n == 0) return;  // what is left in `split` is a cut last line
    std::string_view data(buf.data(), static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = data.find('\n')) != std::string_view::npos; data.remove_prefix(nl + 1)) {
      std::string_view line = data.substr(0, nl);
      if (!split.empty()) {
        split.append(line);
        line = split;
      }
      if (header) {
        header = false;
      } else if (!line.empty()) {
        on_line(line);
      }
      split.clear();
    }
    split.append(data);
  }
}

std::string read_first_line(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) throw std::runtime_error("cannot open journal '" + path.string() + "': " + std::strerror(errno));
  char* buf = nullptr;
  std::size_t cap = 0;
  const ssize_t n = ::getline(&buf, &cap, f);
  std::string line = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  std::free(buf);
  std::fclose(f);
  if (line.ends_with('\n')) line.pop_back();
  return line;
}

// Parses a record line; nullopt if it is not a valid report entry.
std::optional<TaskResult> parse_record(std::string_view line) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(line.data(), line.size());
  if (d.HasParseError()) return std::nullopt;
  auto r = decode_task_result(d);
  if (!r) return std::nullopt;
  return std::move(r.value());
}

}  // namespace

JournalSettings JournalSettings::of(const RunConfig& c) {
  JournalSettings s;
  s.chat_model = c.pipeline.chat_model;
  s.tool_model = c.pipeline.tool_model;
  s.search = c.pipeline.search;
  const auto& p = c.pipeline.prompts;
  s.prompts_digest = fnv1a_hex(p.search_system.source() + '\x1f' + p.search_user.source() + '\x1f' +
                               p.analysis_system.source() + '\x1f' + p.analysis_user.source());
  return s;
}

std::string JournalSettings::describe() const {
  return "chat model " + chat_model + ", tool model " + tool_model + ", search " + (search ? "on" : "off") +
         ", prompts " + prompts_digest;
}

namespace {

// What a queued record holds in memory, roughly: the queue's bound in bytes counts this.
std::size_t footprint(const TaskResult& r) {
  std::size_t n = sizeof r + r.topic.size() + r.analysis.size();
  for (const auto& s : r.sources) {
    n += sizeof s + s.title.size() + s.link.size() + s.media.size() + s.publish_date.size() + s.content.size();
  }
  for (const auto& s : r.steps) {
    n += sizeof s + s.output.size();
    for (const auto& m : s.messages) n += sizeof m + m.content.size();
  }
  if (r.error) n += r.error->message.size();
  return n;
}

}  // namespace

// The journal's state, shared with its writer thread. `mu` guards everything below it; the thread
// writes (and syncs) outside the lock while `busy`, with the fd it took under the lock, and nobody
// else touches the file or `last_sync` until it is idle again (drain()).
struct Journal::Writer {
  Writer(std::filesystem::path p, UniqueFd f, std::string h)
      : path(std::move(p)), header(std::move(h)), fd(std::move(f)), last_sync(std::chrono::steady_clock::now()) {
    thread = std::thread([this] { run(); });
  }

  ~Writer() {
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    wake.notify_all();
    thread.join();  // it writes what is queued first
    if (fd.get() >= 0) ::fdatasync(fd.get());
  }

  void run();
  void write_batch(int to, const std::vector<TaskResult>& batch);
  // Waits (holding `lock`) until the queue is written and the thread idle.
  void drain(std::unique_lock<std::mutex>& lock) {
    hurry = true;
    wake.notify_one();
    written.wait(lock, [&] { return queue.empty() && !busy; });
    hurry = false;
  }
  // fdatasync; why it failed, if it did.
  std::optional<std::string> sync_file(int to) const {
    if (::fdatasync(to) == 0) return std::nullopt;
    return "cannot sync journal '" + path.string() + "': " + std::strerror(errno);
  }
  bool full() const { return queue.size() >= kMaxQueued || queued_bytes >= kMaxQueuedBytes; }
  void fail(std::string why) {
    if (failure) return;
    failure = std::move(why);
    queue.clear();  // nothing more is written: whole lines, but for at most a cut last one
    queued_bytes = 0;
    if (on_failure) on_failure();
  }

  const std::filesystem::path path;
  const std::string header;
  std::mutex mu;
  std::condition_variable wake;     // the writer: records queued, or stop
  std::condition_variable written;  // producers: room in the queue, or the queue written
  UniqueFd fd;
  std::vector<TaskResult> queue;
  std::size_t queued_bytes = 0;  // footprint() of what is queued
  bool busy = false;             // the thread writes (or syncs) a batch outside the lock
  bool dirty = false;            // written since the last fdatasync
  std::function<void()> on_failure;
  bool stop = false;
  bool hurry = false;  // sync() waits: write what is queued now
  std::optional<std::string> failure;
  std::chrono::steady_clock::time_point last_sync;
  std::thread thread;  // last: it starts once everything above is ready
};

void Journal::Writer::run() {
  ::pthread_setname_np(::pthread_self(), "cbm-journal");
  std::vector<TaskResult> batch;
  std::unique_lock lock(mu);
  for (;;) {
    const auto has_work = [&] { return !queue.empty() || stop; };
    if (dirty) {
      // Written but not yet durable: durable within kSyncInterval, even if nothing more comes.
      wake.wait_until(lock, last_sync + kSyncInterval, has_work);
    } else {
      wake.wait(lock, has_work);
    }
    if (queue.empty() && stop) return;  // the destructor syncs
    // Let a batch gather: one wake-up and one write per batch, not per record.
    wake.wait_for(lock, kGather, [&] { return stop || hurry || queue.size() >= kMaxQueued / 2; });
    batch.swap(queue);
    queued_bytes = 0;
    busy = true;
    const int to = fd.get();
    lock.unlock();
    written.notify_all();  // room in the queue

    std::optional<std::string> error;
    if (!batch.empty()) {
      try {
        write_batch(to, batch);
      } catch (const std::exception& e) {
        error = e.what();
      }
      batch.clear();
    }
    const auto now = std::chrono::steady_clock::now();
    const bool due = now - last_sync >= kSyncInterval;
    if (due && !error) error = sync_file(to);

    lock.lock();
    busy = false;
    dirty = !due;
    if (due) last_sync = now;
    // The run learns of it through the ledger's abort reason; on_failure wakes its loop for it.
    if (error) fail(std::move(*error));
    written.notify_all();
  }
}

// One write(2) for the whole batch, encoded into one buffer.
void Journal::Writer::write_batch(int to, const std::vector<TaskResult>& batch) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  for (const TaskResult& r : batch) {
    w.Reset(buf);
    write_task_result(w, r);
    buf.Put('\n');
  }
  write_all(to, std::string_view(buf.GetString(), buf.GetSize()),
            "cannot append to journal '" + path.string() + "'");
}

Journal::Journal(std::filesystem::path path, UniqueFd fd, std::string header)
    : w_(std::make_unique<Writer>(std::move(path), std::move(fd), std::move(header))) {}

Journal::Journal(Journal&& o) noexcept = default;

Journal::~Journal() = default;

const std::filesystem::path& Journal::path() const { return w_->path; }

Journal Journal::create(const std::filesystem::path& path, const JournalSettings& settings) {
  std::string header = header_line(settings);
  Journal j(path, UniqueFd(open_append(path, O_TRUNC)), header);
  write_all(j.w_->fd.get(), header, "cannot write journal '" + path.string() + "'");  // the writer is idle
  j.sync();
  if (auto failure = j.failure()) throw std::runtime_error(*failure);
  return j;
}

Journal Journal::open_for_resume(const std::filesystem::path& path, const JournalSettings& settings, bool force,
                                 const std::function<void(const TaskResult&)>& on_record,
                                 const std::function<bool()>& stop) {
  const auto found = parse_header(read_first_line(path));
  if (!found) throw std::runtime_error("'" + path.string() + "' is not a concurrent_bigmodel journal");
  if (!(*found == settings) && !force) {
    throw std::runtime_error("the journal was written with other settings (" + found->describe() +
                             ") than this run (" + settings.describe() +
                             "); its results would not match: pass --force-resume to resume anyway");
  }
  const std::string header = header_line(settings);
  std::uint64_t line_no = 1;
  rewrite(path, header, [&](std::string_view, const std::optional<TaskResult>& result) {
    // Thrown through rewrite(): its new file is never committed, the journal stays as it was.
    if (stop && stop()) throw JournalReadStopped("stopped while reading '" + path.string() + "'");
    ++line_no;
    if (!result) {
      throw std::runtime_error("'" + path.string() + "' line " + std::to_string(line_no) +
                               " is not a result record (and not a torn last line): refusing to guess");
    }
    if (result->status == TaskStatus::cancelled) return false;  // to be run again
    on_record(*result);
    return true;
  });
  return Journal(path, UniqueFd(open_append(path, 0)), header);
}

void Journal::rewrite(const std::filesystem::path& path, const std::string& header,
                      const std::function<bool(std::string_view, const std::optional<TaskResult>&)>& keep) {
  AtomicFile out(path);
  out.write(header);
  read_record_lines(path, [&](std::string_view line) {
    if (keep(line, parse_record(line))) {
      out.write(line);
      out.write("\n");
    }
  });
  out.commit();
}

void Journal::append(TaskResult result) {
  Writer& w = *w_;
  {
    std::unique_lock lock(w.mu);
    w.written.wait(lock, [&] { return !w.full() || w.failure; });
    if (w.failure) return;
    w.queued_bytes += footprint(result);
    w.queue.push_back(std::move(result));
    // The writer sleeps on an empty queue, or gathers until half full (see run()).
    if (w.queue.size() != 1 && w.queue.size() != kMaxQueued / 2) return;
  }
  w.wake.notify_one();
}

void Journal::sync() {
  Writer& w = *w_;
  std::unique_lock lock(w.mu);
  w.drain(lock);
  if (w.failure) return;
  if (auto error = w.sync_file(w.fd.get())) w.fail(std::move(*error));
  w.last_sync = std::chrono::steady_clock::now();
  w.dirty = false;
}

void Journal::on_failure(std::function<void()> wake) {
  std::lock_guard lock(w_->mu);
  w_->on_failure = std::move(wake);
}

std::optional<std::string> Journal::failure() const {
  std::lock_guard lock(w_->mu);
  return w_->failure;
}

void Journal::for_each_record(const std::function<void(std::string_view)>& on_record) const {
  read_record_lines(w_->path, on_record);
}

void Journal::compact(std::uint32_t from_round) {
  Writer& w = *w_;
  std::unique_lock lock(w.mu);
  w.drain(lock);
  rewrite(w.path, w.header, [&](std::string_view, const std::optional<TaskResult>& result) {
    return result && result->round >= from_round;
  });
  w.fd.reset();  // if the reopen fails, the writer's next write fails (run aborts)
  w.fd.reset(open_append(w.path, 0));
  w.last_sync = std::chrono::steady_clock::now();  // the rewrite was made durable
  w.dirty = false;
}

}  // namespace cbm
