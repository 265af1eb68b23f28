#include "fleet_node.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <fstream>
#include <iostream>

#include "atomic_file.hpp"
#include "bounded_json.hpp"
#include "exit_status.hpp"
#include "fd_limit.hpp"
#include "metrics.hpp"
#include "run_driver.hpp"
#include "task_progress.hpp"

namespace cbm::fleet {

namespace {

constexpr std::uint32_t kRound = 1;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::chrono::milliseconds lease_of(const RunConfig& config, std::chrono::milliseconds grace) {
  return config.timeout * (config.retry.max_retries + 1) + grace;
}

std::string default_node_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string name = host[0] != '\0' ? host : "node";
  name += '-';
  name += std::to_string(::getpid());
  return name;
}

FleetNode::FleetNode(const RunConfig& config, const redis::RedisUrl& url, std::string job, NodeOptions options)
    : config_(config),
      job_(url, job, std::chrono::milliseconds(10000)),
      keys_(job_.keys),
      options_(std::move(options)),
      lease_(lease_of(config, options_.grace)),
      max_deliveries_(config.retry.max_retries + 1) {}

FleetNode::~FleetNode() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
    give_up_ = true;
    closed_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::size_t FleetNode::room() const {
  const std::size_t held = buffer_.size() + out_.size();
  const auto cap = static_cast<std::size_t>(config_.concurrency);
  return held >= cap ? 0 : cap - held;
}

std::optional<TopicLine> FleetNode::next() {
  std::lock_guard lock(mu_);
  if (buffer_.empty()) return std::nullopt;
  FleetTask t = std::move(buffer_.front());
  buffer_.pop_front();
  const std::uint64_t local = next_local_++;
  out_.emplace(local, Held{t.entry, t.round, t.id});
  return TopicLine{local, std::move(t.topic), std::move(t.fields)};
}

bool FleetNode::open() const {
  std::lock_guard lock(mu_);
  return !closed_;
}

void FleetNode::task_finished(const TaskResult& result) {
  {
    std::lock_guard lock(mu_);
    const auto it = out_.find(result.id);
    if (it == out_.end()) return;
    Held held = std::move(it->second);
    out_.erase(it);
    if (result.status == TaskStatus::cancelled) {
      // Not this node's to finish after all (a stop): another node runs it.
      to_release_.emplace_back(held.round, held.entry);
      held_entries_.erase({held.round, held.entry});
    } else {
      TaskResult r = result;
      r.id = held.id;
      r.round = JobKeys(job_.name, held.round).record_round();
      outbox_.push_back(Finished{held.entry, held.round, held.id, encode_task_result(r),
                                 std::string(to_string(r.status)), false});
      outbox_changed_ = true;
    }
  }
  cv_.notify_all();
}

FleetNode::Counts FleetNode::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

void FleetNode::stop_by_signal(int signal) {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    // What waits in the buffer goes back to the group now.
    for (auto& t : buffer_) {
      to_release_.emplace_back(t.round, t.entry);
      held_entries_.erase({t.round, t.entry});
    }
    buffer_.clear();
  }
  cv_.notify_all();
  control_.on_stop_signal(signal);
}

void FleetNode::dead_letter(const FleetTask& t, long long deliveries) {
  TaskResult r;
  r.id = t.id;
  r.round = JobKeys(job_.name, t.round).record_round();
  r.topic = t.topic;
  r.fields = t.fields;
  r.status = TaskStatus::failed;
  ApiError e;
  e.error_class = ErrorClass::task_fatal;
  e.kind = ErrorKind::crash;
  e.message = "delivered " + std::to_string(deliveries) + " times across the fleet without a result (its node " +
              "died or lost it each time); --max-retries " + std::to_string(config_.retry.max_retries) +
              " allows " + std::to_string(max_deliveries_) + " deliveries";
  r.error = e;
  r.attempts = static_cast<int>(std::min<long long>(deliveries - 1, INT_MAX));
  r.started = r.finished = WallClock::now();
  outbox_.push_back(Finished{t.entry, t.round, t.id, encode_task_result(r), "failed", true});
  outbox_changed_ = true;
}

// Called with mu_ held.
void FleetNode::take(const redis::Reply& entry, long long deliveries, Logger& log) {
  std::string why;
  auto task = task_of_entry(entry, why);
  if (!task) {
    // Not a task this program wrote: acknowledged and skipped, so it cannot block the group.
    std::string id = entry.is_array() && !entry.as_array().empty() && entry.at(0).is_string() ? entry.at(0).str : "";
    log.warn("fleet: skipping stream entry " + id + ": " + why);
    if (!id.empty()) to_release_.emplace_back(keys_.round, "ack:" + id);
    return;
  }
  task->round = keys_.round;
  if (held_entries_.contains({task->round, task->entry})) return;  // this node's own, idle while it was stopped
  if (closed_) {
    // Read as the node stopped (the Redis thread looked before the stop): back to the group at once.
    to_release_.emplace_back(task->round, task->entry);
    return;
  }
  if (deliveries > max_deliveries_) {
    ++counts_.dead_lettered;
    dead_letter(*task, deliveries);
    return;
  }
  held_entries_.insert({task->round, task->entry});
  buffer_.push_back(std::move(*task));
}

void FleetNode::reclaim(Logger& log, std::size_t room) {
  auto& c = job_.client;
  const redis::Reply r = c.command_ok({"XAUTOCLAIM", keys_.tasks, JobKeys::kGroup, options_.name,
                                       std::to_string(lease_.count()), autoclaim_cursor_, "COUNT",
                                       std::to_string(room)});
  autoclaim_cursor_ = r.at(0).as_string();
  const auto& entries = r.at(1).as_array();
  std::vector<std::pair<const redis::Reply*, long long>> claimed;
  for (const auto& e : entries) {
    if (!e.is_array() || e.as_array().size() < 2 || e.at(1).is_nil()) continue;
    const std::string& id = e.at(0).as_string();
    // The delivery count (XAUTOCLAIM counted this one).
    const auto p = c.command_ok({"XPENDING", keys_.tasks, JobKeys::kGroup, id, id, "1"});
    long long deliveries = 1;
    if (!p.as_array().empty()) deliveries = p.at(0).at(3).as_integer();
    claimed.emplace_back(&e, deliveries);
  }
  if (claimed.empty()) return;
  std::size_t taken = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& [e, deliveries] : claimed) {
      const std::size_t before = held_entries_.size() + outbox_.size();
      take(*e, deliveries, log);
      if (held_entries_.size() + outbox_.size() > before) ++taken;
    }
    counts_.reclaimed += taken;
  }
  if (taken > 0) {
    control_.notify();
    c.command_ok({"HINCRBY", job_.keys.stats, "reclaimed", std::to_string(taken)});
    log.info("fleet: reclaimed " + std::to_string(taken) + " tasks idle past the lease (" +
             std::to_string(lease_.count()) + " ms)");
  }
}

bool FleetNode::follow_round(Logger& log) {
  const auto m = job_.client.command_ok({"HMGET", job_.keys.meta, "round", "iterations"});
  const bool monitor = !m.at(1).is_nil() && m.at(1).as_string() != "1";
  if (!monitor) return true;  // a one-round job: its keys for good
  std::uint32_t round = 0;
  if (!m.at(0).is_nil()) {
    const std::string& text = m.at(0).as_string();
    std::from_chars(text.data(), text.data() + text.size(), round);
  }
  if (round == 0) return false;  // the leader has not started the first round yet
  if (round != keys_.round) {
    keys_ = JobKeys(job_.name, round);
    autoclaim_cursor_ = "0-0";
    log.info("fleet: job '" + job_.name + "' round " + std::to_string(round));
  }
  return true;
}

void FleetNode::fetch(Logger& log, std::size_t room) {
  const redis::Reply r = job_.client.command_ok({"XREADGROUP", "GROUP", JobKeys::kGroup, options_.name, "COUNT",
                                                 std::to_string(room), "STREAMS", keys_.tasks, ">"});
  if (r.is_nil()) return;
  std::size_t n = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& stream : r.as_array()) {
      for (const auto& e : stream.at(1).as_array()) {
        take(e, 1, log);
        ++n;
      }
    }
  }
  if (n > 0) control_.notify();
}

// One pass: write what finished, hand back what is released, extend leases, take work.
void FleetNode::step(Logger& log) {
  auto& c = job_.client;
  // Finished records first: they are what a crash would cost. Up to 256 finish scripts a round trip
  // (pipelined EVALSHAs, each atomic on its own); the first of a node loads the script.
  for (;;) {
    std::vector<Finished> batch;
    {
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < outbox_.size() && i < 256; ++i) batch.push_back(outbox_[i]);
    }
    if (batch.empty()) break;
    auto keys_of = [&](const Finished& f) {
      const JobKeys k(job_.name, f.round);
      return std::vector<std::string>{k.done, k.results, k.tasks, k.stats};
    };
    auto args_of = [](const Finished& f) {
      return std::vector<std::string>{std::to_string(f.id), f.entry, f.record, f.status, JobKeys::kGroup,
                                      f.dead ? "1" : "0"};
    };
    std::vector<redis::Reply> replies;
    if (finish_.sha.empty()) {
      replies.push_back(c.eval(finish_, keys_of(batch.front()), args_of(batch.front())));
      batch.resize(1);
    } else {
      std::vector<std::vector<std::string>> commands;
      for (const auto& f : batch) {
        std::vector<std::string> cmd{"EVALSHA", finish_.sha, "4"};
        const auto keys = keys_of(f);
        cmd.insert(cmd.end(), keys.begin(), keys.end());
        const auto a = args_of(f);
        cmd.insert(cmd.end(), a.begin(), a.end());
        commands.push_back(std::move(cmd));
      }
      replies = c.pipeline(commands);
    }
    std::size_t processed = 0;
    std::string error;
    for (const auto& r : replies) {
      if (r.is_error()) {
        if (r.str.starts_with("NOSCRIPT")) finish_.sha.clear();  // Redis restarted: loaded again next round
        else error = r.str;
        break;
      }
      ++processed;
    }
    {
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < processed; ++i) {
        held_entries_.erase({outbox_.front().round, outbox_.front().entry});
        outbox_.pop_front();
        if (replies[i].as_integer() == 0) ++counts_.duplicates;
      }
      if (processed > 0) outbox_changed_ = true;
    }
    if (!error.empty()) throw redis::ServerError("Redis finish script failed: " + error);
    if (processed < replies.size()) continue;
  }
  std::vector<Entry> release;
  {
    std::lock_guard lock(mu_);
    release.swap(to_release_);
  }
  // The release and extend scripts, once per round among `entries` (sorted by round).
  auto per_round = [&](redis::Script& script, std::vector<Entry> entries) {
    std::sort(entries.begin(), entries.end());
    for (std::size_t i = 0; i < entries.size();) {
      const std::uint32_t round = entries[i].first;
      const JobKeys k(job_.name, round);
      std::vector<std::string> args{JobKeys::kGroup, options_.name};
      for (; i < entries.size() && entries[i].first == round; ++i) {
        if (entries[i].second.starts_with("ack:")) {
          c.command_ok({"XACK", k.tasks, JobKeys::kGroup, entries[i].second.substr(4)});
        } else {
          args.push_back(entries[i].second);
        }
      }
      if (args.size() > 2) c.eval(script, {k.tasks}, args);
    }
  };
  if (!release.empty()) per_round(release_, std::move(release));
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_extend_) {
    std::vector<Entry> held;
    {
      std::lock_guard lock(mu_);
      held.assign(held_entries_.begin(), held_entries_.end());
    }
    per_round(extend_, std::move(held));
    c.command_ok({"HSET", job_.keys.nodes, options_.name, std::to_string(now_ms())});
    next_extend_ = now + std::clamp(lease_ / 3, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
  }
  bool closed = false;
  std::size_t space = 0;
  {
    std::lock_guard lock(mu_);
    closed = closed_;
    space = room();
  }
  if (closed || space == 0 || !follow_round(log)) return;
  if (now >= next_reclaim_) {
    reclaim(log, space);
    next_reclaim_ = now + std::max(std::chrono::milliseconds(100), std::min(lease_ / 4, std::chrono::milliseconds(1000)));
    std::lock_guard lock(mu_);
    space = room();
  }
  if (space > 0) fetch(log, space);
  if (metrics_ != nullptr) {
    const Counts now_counts = counts();
    metrics_->fleet_counts(now_counts.reclaimed, now_counts.duplicates, now_counts.dead_lettered);
  }
}

namespace {

std::string journal_line(const std::string& entry, std::uint32_t round, std::uint64_t id, const std::string& status,
                         bool dead, const std::string& record) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  write_key_string(w, "entry", entry);
  w.Key("round");
  w.Uint(round);
  w.Key("id");
  w.Uint64(id);
  write_key_string(w, "status", status);
  w.Key("dead");
  w.Bool(dead);
  write_key_string(w, "record", record);
  w.EndObject();
  std::string line(buf.GetString(), buf.GetSize());
  line += '\n';
  return line;
}

}  // namespace

void FleetNode::spill(Logger& log) {
  if (options_.journal.empty()) return;
  std::string text;
  {
    std::lock_guard lock(mu_);
    if (!outbox_changed_) return;
    outbox_changed_ = false;
    for (const auto& f : outbox_) text += journal_line(f.entry, f.round, f.id, f.status, f.dead, f.record);
  }
  try {
    if (text.empty()) {
      std::error_code ec;
      std::filesystem::remove(options_.journal, ec);
      journal_written_ = false;
      return;
    }
    AtomicFile out(options_.journal, 0600);
    out.write(text);
    out.commit();
    journal_written_ = true;
  } catch (const std::exception& e) {
    log.error("fleet: cannot write the node journal '" + options_.journal.string() + "': " + e.what());
  }
}

std::size_t FleetNode::load_journal() {
  if (options_.journal.empty()) return 0;
  std::ifstream in(options_.journal);
  if (!in) return 0;
  std::size_t n = 0;
  std::string line;
  std::lock_guard lock(mu_);
  while (std::getline(in, line)) {
    rapidjson::Document d;
    if (line.size() > (64u << 20) || parse_bounded(d, line, JsonBounds{4, 64})) continue;
    if (!d.IsObject() || !d.HasMember("entry") || !d["entry"].IsString() || !d.HasMember("id") ||
        !d["id"].IsUint64() || !d.HasMember("status") || !d["status"].IsString() || !d.HasMember("record") ||
        !d["record"].IsString()) {
      continue;
    }
    const std::string status = d["status"].GetString();
    if (status != "succeeded" && status != "failed") continue;
    const std::uint32_t round = d.HasMember("round") && d["round"].IsUint() ? d["round"].GetUint() : 0;
    outbox_.push_back(Finished{d["entry"].GetString(), round, d["id"].GetUint64(),
                               std::string(d["record"].GetString(), d["record"].GetStringLength()), status,
                               d.HasMember("dead") && d["dead"].IsBool() && d["dead"].GetBool()});
    ++n;
  }
  journal_written_ = n > 0;
  return n;
}

void FleetNode::redis_loop() {
  Logger& log = *log_;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (quit_ && ((outbox_.empty() && to_release_.empty()) || give_up_)) return;
    }
    bool ok = false;
    try {
      if (job_.client.try_connect()) {
        step(log);
        ok = true;
        if (journal_written_) {
          bool empty = false;
          {
            std::lock_guard lock(mu_);
            empty = outbox_.empty();
          }
          if (empty) {
            std::error_code ec;
            std::filesystem::remove(options_.journal, ec);
            journal_written_ = false;
          }
        }
        if (redis_down_logged_) {
          log.info("fleet: Redis is back; writing the records kept meanwhile");
          redis_down_logged_ = false;
        }
        last_server_error_.clear();
      }
    } catch (const redis::ServerError& e) {
      // A Redis refusing writes (OOM, READONLY, MISCONF) says so at every pass: logged when it changes.
      if (e.what() != last_server_error_) log.error(std::string("fleet: ") + e.what());
      last_server_error_ = e.what();
    } catch (const std::runtime_error& e) {  // ConnectionError, ProtocolError: the connection was dropped
      if (!redis_down_logged_) log.warn(std::string("fleet: ") + e.what() + "; taking no task until it is back");
      redis_down_logged_ = true;
    }
    if (!ok && !job_.client.connected() && !redis_down_logged_) {
      log.warn("fleet: Redis is unavailable (" + job_.client.last_error() + "); taking no task until it is back");
      redis_down_logged_ = true;
    }
    if (!ok) spill(log);
    std::unique_lock lock(mu_);
    if (!ok) {
      // Redis down or refusing: the next pass after a poll (the client's backoff paces reconnections),
      // whatever waits to be written; only giving up ends the wait early.
      cv_.wait_for(lock, quit_ ? options_.poll * 4 : options_.poll, [&] { return give_up_; });
    } else {
      cv_.wait_for(lock, options_.poll, [&] { return !outbox_.empty() || !to_release_.empty() || quit_; });
    }
  }
}

int FleetNode::run() {
  try {
    job_.client.connect_within(job_.wait);
    join_job(job_, JournalSettings::of(config_), config_.input_format, false);
  } catch (const SettingsMismatch& e) {
    std::cerr << "concurrent_bigmodel: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::runtime_error& e) {
    std::cerr << "concurrent_bigmodel: " << e.what() << "\n";
    return kExitAborted;
  }
  check_placeholders(config_, {});
  ensure_open_file_limit(config_);
  RunParts parts(config_, control_, *this, DrainPolicy::in_flight);
  parts.ledger.begin_round(kRound);
  parts.progress.begin_round(kRound, std::nullopt);
  log_ = &parts.log;
  parts.log.info("fleet: node " + options_.name + " working on job '" + job_.name + "' at " +
                 job_.client.url().describe() + ": mode " + std::string(to_string(config_.mode)) + ", concurrency " +
                 std::to_string(config_.concurrency) + ", lease " + std::to_string(lease_.count()) + " ms");
  if (const std::size_t kept = load_journal(); kept > 0) {
    parts.log.info("fleet: " + std::to_string(kept) + " records from the node journal '" + options_.journal.string() +
                   "' to write first");
  }
  metrics_ = parts.metrics ? &*parts.metrics : nullptr;
  if (metrics_ != nullptr) metrics_->fleet_counts(0, 0, 0);
  thread_ = std::thread([this] { redis_loop(); });
  try {
    parts.executor->run_round(kRound, *this);
  } catch (...) {
    // The Redis thread uses the run's log and metrics: it ends before they do.
    {
      std::lock_guard lock(mu_);
      closed_ = quit_ = give_up_ = true;
    }
    cv_.notify_all();
    thread_.join();
    log_ = nullptr;
    metrics_ = nullptr;
    throw;
  }
  // Stopped: what the buffer still holds goes back; the Redis thread writes what finished.
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    for (auto& t : buffer_) {
      to_release_.emplace_back(t.round, t.entry);
      held_entries_.erase({t.round, t.entry});
    }
    buffer_.clear();
    quit_ = true;
  }
  cv_.notify_all();
  // Redis down at the end: the records wait for it up to the drain grace.
  const auto deadline = std::chrono::steady_clock::now() + config_.drain_grace;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (outbox_.empty() && to_release_.empty()) break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    std::lock_guard lock(mu_);
    give_up_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mu_);
    outbox_changed_ = true;  // the journal's last state: what is still unwritten (nothing: removed)
  }
  spill(parts.log);
  std::size_t unwritten = 0;
  {
    std::lock_guard lock(mu_);
    unwritten = outbox_.size();
    outbox_.clear();
  }
  const Counts c = counts();
  metrics_ = nullptr;
  if (unwritten > 0) {
    parts.log.error("fleet: " + std::to_string(unwritten) + " finished records could not be written (Redis unavailable); " +
                    (options_.journal.empty()
                         ? std::string("their tasks stay pending and another node runs them again")
                         : "kept in the node journal '" + options_.journal.string() +
                               "': a node started with it writes them"));
  }
  if (parts.tracer) parts.tracer->close(kTraceFlushGrace);
  parts.progress.finish();
  log_ = nullptr;
  const auto abort_reason = parts.ledger.abort_reason();
  if (abort_reason) parts.log.error("node aborted: " + *abort_reason);
  const int sig = control_.first_signal();
  const int status = abort_reason ? kExitAborted : sig != 0 ? 128 + sig : kExitAllSucceeded;
  parts.log.info("fleet: node stopped with exit status " + std::to_string(status) + ": " +
                 summary_line(parts.ledger.totals(), "none") + "; reclaimed " + std::to_string(c.reclaimed) +
                 ", duplicates " + std::to_string(c.duplicates) + ", dead-lettered " +
                 std::to_string(c.dead_lettered));
  return status;
}

}  // namespace cbm::fleet
