#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <rapidjson/reader.h>
#include <stdexcept>
#include <system_error>

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

// Calls `on_line` for each line of the file after the header; reports a final line without '\n' as
// torn (it is passed to nothing). Returns the header line.
std::string read_lines(const std::filesystem::path& path, const std::function<void(const std::string&)>& on_line,
                       bool& torn_tail) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) throw std::runtime_error("cannot open journal '" + path.string() + "': " + std::strerror(errno));
  char* buf = nullptr;
  std::size_t cap = 0;
  std::string header;
  bool first = true;
  torn_tail = false;
  for (ssize_t n; (n = ::getline(&buf, &cap, f)) >= 0;) {
    std::string line(buf, static_cast<std::size_t>(n));
    if (!line.ends_with('\n')) {
      torn_tail = true;
      break;
    }
    line.pop_back();
    if (first) {
      header = std::move(line);
      first = false;
    } else if (!line.empty()) {
      on_line(line);
    }
  }
  std::free(buf);
  std::fclose(f);
  return header;
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
std::optional<TaskResult> parse_record(const std::string& line) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(line.c_str(), line.size());
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

Journal::Journal(std::filesystem::path path, int fd, std::string header)
    : path_(std::move(path)), fd_(fd), header_(std::move(header)), last_sync_(std::chrono::steady_clock::now()) {}

Journal::Journal(Journal&& o) noexcept
    : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)), header_(std::move(o.header_)), last_sync_(o.last_sync_) {}

Journal::~Journal() {
  if (fd_ >= 0) {
    ::fdatasync(fd_);
    ::close(fd_);
  }
}

Journal Journal::create(const std::filesystem::path& path, const JournalSettings& settings) {
  const int fd = open_append(path, O_TRUNC);
  std::string header = header_line(settings);
  Journal j(path, fd, header);
  write_all(fd, header, "cannot write journal '" + path.string() + "'");
  j.sync();
  return j;
}

Journal Journal::open_for_resume(const std::filesystem::path& path, const JournalSettings& settings, bool force,
                                 const std::function<void(const TaskResult&)>& on_record) {
  const auto found = parse_header(read_first_line(path));
  if (!found) throw std::runtime_error("'" + path.string() + "' is not a concurrent_bigmodel journal");
  if (!(*found == settings) && !force) {
    throw std::runtime_error("the journal was written with other settings (" + found->describe() +
                             ") than this run (" + settings.describe() +
                             "); its results would not match: pass --force-resume to resume anyway");
  }
  const std::string header = header_line(settings);
  std::uint64_t line_no = 1;
  rewrite(path, header, [&](const std::string&, const std::optional<TaskResult>& result) {
    ++line_no;
    if (!result) {
      throw std::runtime_error("'" + path.string() + "' line " + std::to_string(line_no) +
                               " is not a result record (and not a torn last line): refusing to guess");
    }
    if (result->status == TaskStatus::cancelled) return false;  // to be run again
    on_record(*result);
    return true;
  });
  return Journal(path, open_append(path, 0), header);
}

void Journal::rewrite(const std::filesystem::path& path, const std::string& header,
                      const std::function<bool(const std::string&, const std::optional<TaskResult>&)>& keep) {
  AtomicFile out(path);
  out.write(header);
  bool torn = false;
  read_lines(
      path,
      [&](const std::string& line) {
        if (keep(line, parse_record(line))) {
          out.write(line);
          out.write("\n");
        }
      },
      torn);
  out.commit();
}

void Journal::append(const TaskResult& result) {
  std::string line = encode_task_result(result);
  line += '\n';
  write_all(fd_, line, "cannot append to journal '" + path_.string() + "'");
  const auto now = std::chrono::steady_clock::now();
  if (now - last_sync_ >= std::chrono::seconds(1)) sync();
}

void Journal::sync() {
  ::fdatasync(fd_);
  last_sync_ = std::chrono::steady_clock::now();
}

void Journal::for_each_line(std::optional<std::uint32_t> from_round,
                            const std::function<void(const std::string&)>& on_line) const {
  bool torn = false;
  rapidjson::Reader reader;
  rapidjson::BaseReaderHandler<> ignore;  // validates without building a document
  read_lines(
      path_,
      [&](const std::string& line) {
        if (from_round) {
          auto result = parse_record(line);
          if (result && result->round >= *from_round) on_line(line);
          return;
        }
        rapidjson::StringStream in(line.c_str());
        if (!reader.Parse<rapidjson::kParseIterativeFlag>(in, ignore).IsError() && line.front() == '{') on_line(line);
      },
      torn);
}

void Journal::compact(std::uint32_t from_round) {
  rewrite(path_, header_, [&](const std::string&, const std::optional<TaskResult>& result) {
    return result && result->round >= from_round;
  });
  ::close(fd_);
  fd_ = open_append(path_, 0);
}

}  // namespace cbm
