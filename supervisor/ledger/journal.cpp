#include "journal.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <variant>
#include <vector>

#include "atomic_file.hpp"
#include "fnv1a.hpp"
#include "json_reader.hpp"
#include "output_file.hpp"
#include "result_codec.hpp"

namespace cbm {
namespace {

constexpr std::string_view kMagic = "concurrent_bigmodel journal";
constexpr int kVersion = 1;
// The end-of-run line (see journal.hpp): how a journal says its run finished.
constexpr std::string_view kEndKey = "{\"journal_end\"";

bool is_end_line(std::string_view line) { return line.starts_with(kEndKey); }

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
  w.Key("temperature");
  w.Double(s.model.temperature);
  w.Key("top_p");
  w.Double(s.model.top_p);
  w.Key("max_tokens");
  w.Int(s.model.max_tokens);
  write_key_string(w, "thinking", to_string(s.model.thinking));
  write_key_string(w, "response_format", to_string(s.model.response_format));
  write_key_string(w, "search_via", to_string(s.search_via));
  write_key_string(w, "search_engine", s.search_settings.engine);
  write_key_string(w, "search_recency", s.search_settings.recency);
  write_key_string(w, "search_domain", s.search_settings.domain);
  w.Key("search_count");
  w.Int(s.search_settings.count);
  write_key_string(w, "search_content_size", s.search_settings.content_size);
  write_key_string(w, "api_flavor", to_string(s.api_flavor));
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
  // Absent in a header written before they were stored: the defaults (JournalSettings says why).
  r.number("temperature", s.model.temperature);
  r.number("top_p", s.model.top_p);
  r.integer("max_tokens", s.model.max_tokens);
  r.integer("search_count", s.search_settings.count);
  r.string("search_engine", s.search_settings.engine);
  r.string("search_recency", s.search_settings.recency);
  r.string("search_domain", s.search_settings.domain);
  r.string("search_content_size", s.search_settings.content_size);
  std::string thinking(to_string(s.model.thinking));
  std::string response_format(to_string(s.model.response_format));
  std::string search_via(to_string(s.search_via));
  std::string api_flavor(to_string(s.api_flavor));
  r.string("thinking", thinking);
  r.string("response_format", response_format);
  r.string("search_via", search_via);
  r.string("api_flavor", api_flavor);
  const auto t = thinking_from_string(thinking);
  const auto f = response_format_from_string(response_format);
  const auto v = search_via_from_string(search_via);
  const auto a = api_flavor_from_string(api_flavor);
  if (!error.empty() || magic != kMagic || version != kVersion || !t || !f || !v || !a) return std::nullopt;
  s.model.thinking = *t;
  s.model.response_format = *f;
  s.search_via = *v;
  s.api_flavor = *a;
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

int open_append(const std::filesystem::path& path, OpenAs how) {
  return open_output_file("journal", path, how, kPrivateFileMode).release();
}

// Calls `on_line` for each record line of the file (after the header, without its '\n'; empty lines
// and the end-of-run line skipped). A last line without '\n' (cut short by a crash or a failed write)
// is not a line. Reads in large blocks: no copy of a line unless it spans two of them. Returns whether
// the last line is the end-of-run line.
bool read_record_lines(const std::filesystem::path& path,
                       const std::function<void(std::string_view)>& on_line) {
  const UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (in.get() < 0) fail_errno("cannot read journal '" + path.string() + "'");
  std::vector<char> buf(1 << 20);
  std::string split;  // a line that spans two reads
  bool header = true;
  bool ended = false;
  for (;;) {
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("cannot read journal '" + path.string() + "'");
    if (n == 0) return ended && split.empty();  // what is left in `split` is a cut last line
    std::string_view data(buf.data(), static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = data.find('\n')) != std::string_view::npos; data.remove_prefix(nl + 1)) {
      std::string_view line = data.substr(0, nl);
      if (!split.empty()) {
        split.append(line);
        line = split;
      }
      if (header) {
        header = false;
      } else if (is_end_line(line)) {
        ended = true;
      } else if (!line.empty()) {
        ended = false;
        on_line(line);
      }
      split.clear();
    }
    split.append(data);
  }
}

std::string read_first_line(const std::filesystem::path& path) {
  // O_NONBLOCK: a FIFO put at the path cannot hold the open; the header is read within a bound (a
  // file of one endless line is no journal).
  constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) {
    throw std::runtime_error("cannot open journal '" + path.string() + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw std::runtime_error("'" + path.string() + "' is not a regular file");
  std::string line;
  char chunk[4096];
  while (line.size() < kMaxHeaderBytes && line.find('\n') == std::string::npos) {
    const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(chunk, static_cast<std::size_t>(n));
  }
  if (const std::size_t nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
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
  s.model = c.pipeline.model;
  // Without a search step its settings change nothing: left at their defaults, they cannot refuse.
  if (c.pipeline.search) {
    s.search_via = c.pipeline.search_via;
    s.search_settings = c.pipeline.search_settings;
  }
  s.api_flavor = c.client.flavor;
  return s;
}

namespace {

// The shortest text that reads back as `v`: equal texts, equal values.
std::string number_text(double v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string(buf, end);
}

std::string in_quotes(std::string_view v) {
  std::string text = "'";
  text += v;
  text += '\'';
  return text;
}

}  // namespace

std::string JournalSettings::encode() const { return header_line(*this); }

std::optional<JournalSettings> JournalSettings::decode(const std::string& line) { return parse_header(line); }

std::string JournalSettings::differences(const JournalSettings& now, std::string_view where) const {
  std::string text;
  const auto differ = [&](const char* flag, const std::string& then, const std::string& current) {
    if (then == current) return;
    if (!text.empty()) text += "; ";
    text += flag;
    text += ": ";
    text += then;
    text += " in ";
    text += where;
    text += ", ";
    text += current;
    text += " now";
  };
  differ("--chat-model", chat_model, now.chat_model);
  differ("--tool-model", tool_model, now.tool_model);
  differ("--no-search", search ? "search on" : "search off", now.search ? "search on" : "search off");
  differ("--prompt-file", "prompts " + prompts_digest, "prompts " + now.prompts_digest);
  differ("--temperature", number_text(model.temperature), number_text(now.model.temperature));
  differ("--top-p", number_text(model.top_p), number_text(now.model.top_p));
  differ("--max-tokens", std::to_string(model.max_tokens), std::to_string(now.model.max_tokens));
  differ("--thinking", std::string(to_string(model.thinking)), std::string(to_string(now.model.thinking)));
  differ("--response-format", std::string(to_string(model.response_format)),
         std::string(to_string(now.model.response_format)));
  differ("--search-via", std::string(to_string(search_via)), std::string(to_string(now.search_via)));
  differ("--search-engine", search_settings.engine, now.search_settings.engine);
  differ("--search-recency", search_settings.recency, now.search_settings.recency);
  differ("--search-domain", in_quotes(search_settings.domain), in_quotes(now.search_settings.domain));
  differ("--search-count", std::to_string(search_settings.count), std::to_string(now.search_settings.count));
  differ("--search-content-size", search_settings.content_size, now.search_settings.content_size);
  differ("--api-flavor", std::string(to_string(api_flavor)), std::string(to_string(now.api_flavor)));
  return text;
}

// A queued line: a terminal record, or a round's unread topics.
struct Journal::Entry {
  std::variant<TaskResult, UnreadTopics, std::string> record;  // std::string: a batch line, encoded
};

namespace {

std::size_t footprint(const UnreadTopics& u) { return sizeof u; }

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
  void write_batch(int to, const std::vector<Entry>& batch);
  void push(Entry entry, std::size_t size);
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
  std::vector<Entry> queue;
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
  std::vector<Entry> batch;
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
void Journal::Writer::write_batch(int to, const std::vector<Entry>& batch) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  for (const Entry& e : batch) {
    w.Reset(buf);
    if (const auto* r = std::get_if<TaskResult>(&e.record)) {
      write_task_result(w, *r);
    } else if (const auto* u = std::get_if<UnreadTopics>(&e.record)) {
      const std::string line = encode_unread_journal_line(*u);
      for (const char c : line) buf.Put(c);
    } else {
      for (const char c : std::get<std::string>(e.record)) buf.Put(c);
    }
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
  Journal j(path, UniqueFd(open_append(path, OpenAs::replace)), header);
  write_all(j.w_->fd.get(), header, "cannot write journal '" + path.string() + "'");  // the writer is idle
  j.sync();
  if (auto failure = j.failure()) throw std::runtime_error(*failure);
  return j;
}

std::optional<Journal::Found> Journal::inspect(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return std::nullopt;
  Found found;
  found.journal = parse_header(read_first_line(path)).has_value();
  if (!found.journal) return found;
  // The status is the record's one "status" key, written by this program's encoder: a string value
  // cannot hold it unescaped, and it comes before `fields` (whose names are the input's: a column
  // may be called "status"). A not_read range has none.
  found.finished = read_record_lines(path, [&](std::string_view line) {
    constexpr std::string_view kStatus = "\"status\":\"";
    const std::size_t at = line.find(kStatus);
    if (at != std::string_view::npos && !line.substr(at + kStatus.size()).starts_with("cancelled\"")) {
      ++found.results;
    }
  });
  return found;
}

void Journal::mark_finished(int exit_status) {
  Writer& w = *w_;
  std::unique_lock lock(w.mu);
  w.drain(lock);
  if (w.failure) return;
  std::string line(kEndKey);
  line += ":true,\"exit_status\":" + std::to_string(exit_status) + "}\n";
  try {
    write_all(w.fd.get(), line, "cannot append to journal '" + w.path.string() + "'");
  } catch (const std::exception& e) {
    w.fail(e.what());
    return;
  }
  if (auto error = w.sync_file(w.fd.get())) w.fail(std::move(*error));
  w.last_sync = std::chrono::steady_clock::now();
  w.dirty = false;
}

Journal Journal::open_for_resume(const std::filesystem::path& path, const JournalSettings& settings, bool force,
                                 const std::function<void(const TaskResult&)>& on_record,
                                 const std::function<bool()>& stop,
                                 const std::function<void(std::string_view)>& on_batch) {
  const auto found = parse_header(read_first_line(path));
  if (!found) throw std::runtime_error("'" + path.string() + "' is not a concurrent_bigmodel journal");
  if (const std::string differences = found->differences(settings); !differences.empty() && !force) {
    throw std::runtime_error("the journal was written with other settings than this run (" + differences +
                             "); its results would not match: pass --force-resume to resume anyway");
  }
  const std::string header = header_line(settings);
  std::uint64_t line_no = 1;
  rewrite(path, header, [&](std::string_view line, const std::optional<TaskResult>& result) {
    // Thrown through rewrite(): its new file is never committed, the journal stays as it was.
    if (stop && stop()) throw JournalReadStopped("stopped while reading '" + path.string() + "'");
    ++line_no;
    if (unread_entry_of_journal_line(line)) return false;  // those topics have no record: they run again
    if (is_batch_journal_line(line)) {  // a batch's ids: kept, and handed to the run (batch_transport.hpp)
      if (on_batch) on_batch(line);
      return true;
    }
    if (!result) {
      throw std::runtime_error("'" + path.string() + "' line " + std::to_string(line_no) +
                               " is not a result record (and not a torn last line): refusing to guess");
    }
    if (result->status == TaskStatus::cancelled) return false;  // to be run again
    on_record(*result);
    return true;
  });
  return Journal(path, UniqueFd(open_append(path, OpenAs::append)), header);
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
  const std::size_t size = footprint(result);
  w_->push(Entry{std::move(result)}, size);
}

void Journal::append(const UnreadTopics& unread) { w_->push(Entry{unread}, footprint(unread)); }

void Journal::append_batch_line(std::string line) {
  if (!is_batch_journal_line(line) || line.find('\n') != std::string::npos) {
    throw std::logic_error("a batch journal line is one line starting with {\"batch\":");
  }
  const std::size_t size = line.size();
  w_->push(Entry{std::move(line)}, size);
}

void Journal::Writer::push(Entry entry, std::size_t size) {
  {
    std::unique_lock lock(mu);
    written.wait(lock, [&] { return !full() || failure; });
    if (failure) return;
    queued_bytes += size;
    queue.push_back(std::move(entry));
    // The writer sleeps on an empty queue, or gathers until half full (see run()).
    if (queue.size() != 1 && queue.size() != kMaxQueued / 2) return;
  }
  wake.notify_one();
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
  rewrite(w.path, w.header, [&](std::string_view line, const std::optional<TaskResult>& result) {
    if (result) return result->round >= from_round;
    if (is_batch_journal_line(line)) return true;  // a batch's ids: a --resume may still collect it
    const auto unread = unread_entry_of_journal_line(line);
    if (!unread) return false;
    const auto decoded = decode_unread_topics(*unread);
    return decoded && decoded.value().round >= from_round;
  });
  w.fd.reset();
  try {
    w.fd.reset(open_append(w.path, OpenAs::append));
  } catch (const std::exception& e) {  // a usage error here would end the run with exit 2: the run aborts
    w.fail(std::string("cannot reopen the journal after compacting it: ") + e.what());
    return;
  }
  w.last_sync = std::chrono::steady_clock::now();  // the rewrite was made durable
  w.dirty = false;
}

}  // namespace cbm
