#include "fleet_job.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>
#include <unordered_map>

#include "atomic_file.hpp"
#include "bounded_json.hpp"
#include "duplicate_resolver.hpp"
#include "duplicate_topics.hpp"
#include "exit_status.hpp"
#include "fnv1a.hpp"
#include "json_reader.hpp"
#include "leader_lease.hpp"
#include "report_writer.hpp"
#include "run_driver.hpp"
#include "topic_plan.hpp"

namespace cbm::fleet {

std::optional<std::string> job_name_problem(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
  if (ok) return std::nullopt;
  std::string m = "'";
  m += name.substr(0, 80);
  m += "' is not a job name (1 to 64 letters, digits, '.', '_' or '-')";
  return m;
}

JobKeys::JobKeys(const std::string& job, std::uint32_t r) : round(r) {
  const std::string p = "cbm:{" + job + "}:";
  meta = p + "meta";
  stats = p + "stats";
  nodes = p + "nodes";
  leader = p + "leader";
  const std::string rp = r == 0 ? p : p + "r" + std::to_string(r) + ":";
  round_meta = rp + "meta";
  tasks = rp + "tasks";
  results = rp + "results";
  done = rp + "done";
  dups = rp + "dups";
}

void StopFlag::set(int signal) {
  {
    std::lock_guard lock(mu_);
    if (signal_ == 0) signal_ = signal;
  }
  cv_.notify_all();
}

int StopFlag::signal() const {
  std::lock_guard lock(mu_);
  return signal_;
}

bool StopFlag::wait_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, d, [&] { return signal_ != 0; });
}

JobHandle::JobHandle(const redis::RedisUrl& url, const std::string& job, std::chrono::milliseconds w)
    : client(url, redis::Client::Options{}), keys(job), name(job), wait(w) {}

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view format_name(InputFormat f) {
  switch (f) {
    case InputFormat::jsonl:
      return "jsonl";
    case InputFormat::csv:
      return "csv";
    case InputFormat::text:
      break;
  }
  return "text";
}

std::string encode_fields(const Fields& fields) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartArray();
  for (const auto& f : fields) {
    w.StartArray();
    w.String(f.name.data(), static_cast<rapidjson::SizeType>(f.name.size()));
    w.String(f.value.data(), static_cast<rapidjson::SizeType>(f.value.size()));
    w.EndArray();
  }
  w.EndArray();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

void join_job(JobHandle& job, const JournalSettings& settings, InputFormat format, bool create) {
  auto& c = job.client;
  const std::string mine = settings.encode();
  if (create) {
    c.command_ok({"HSETNX", job.keys.meta, "settings", mine});
    c.command_ok({"HSETNX", job.keys.meta, "input_format", std::string(format_name(format))});
  }
  const redis::Reply stored = c.command_ok({"HGET", job.keys.meta, "settings"});
  if (stored.is_nil()) {
    throw SettingsMismatch("job '" + job.name + "' does not exist in " + c.url().describe() +
                           " (submit creates it)");
  }
  if (stored.as_string().size() > 65536 || json_shape_problem(stored.as_string(), JsonBounds{4, 256})) {
    throw SettingsMismatch("job '" + job.name + "': its settings in Redis are not this program's");
  }
  const auto theirs = JournalSettings::decode(stored.as_string());
  if (!theirs) throw SettingsMismatch("job '" + job.name + "': its settings in Redis are not this program's");
  const std::string diff = theirs->differences(settings, "the job");
  if (!diff.empty()) {
    throw SettingsMismatch("job '" + job.name + "' was submitted with other settings: " + diff);
  }
}

// The scripts. Each runs atomically in Redis: nothing else happens between its commands.
redis::Script enqueue_script() {
  // KEYS meta, tasks, dups; ARGV first_id, n, then n (topic, fields, first occurrence or '') triples.
  // Adds the topics whose id is at or past the cursor (a repeated one to `dups`, not the stream) and
  // moves it: a submit killed and run again adds nothing twice.
  // -1 when the round is gone (a monitor's leader moved two rounds on): nothing is written.
  return {R"lua(
if redis.call('HEXISTS', KEYS[1], 'created') == 0 then return -1 end
local cursor = tonumber(redis.call('HGET', KEYS[1], 'submitted') or '0')
local first = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local added = 0
for i = 0, n - 1 do
  local id = first + i
  if id >= cursor then
    local sid = string.format('%d', id)
    if ARGV[5 + 3 * i] ~= '' then
      redis.call('HSET', KEYS[3], sid, ARGV[5 + 3 * i])
    else
      redis.call('XADD', KEYS[2], '*', 'id', sid, 'topic', ARGV[3 + 3 * i], 'fields', ARGV[4 + 3 * i])
    end
    added = added + 1
    cursor = id + 1
  end
end
redis.call('HSET', KEYS[1], 'submitted', string.format('%d', cursor))
return added
)lua", {}};
}

redis::Script finish_script() {
  // KEYS done, results, tasks, stats; ARGV id, entry, record, status, group, dead (1: a dead letter).
  // The first result of a task wins: it is added to the results stream and the done index; a later one
  // is only counted as a duplicate. The entry is acknowledged either way.
  // A round a monitor's leader has deleted since (its tasks stream is gone): a late result, counted as
  // a duplicate and not written (writing would bring the round's keys back).
  return {R"lua(
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
  return 0
end
local first = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[4])
if first == 1 then
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'record', ARGV[3])
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[4], 'dead_lettered', 1) end
else
  redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
end
redis.call('XACK', KEYS[3], ARGV[5], ARGV[2])
return first
)lua", {}};
}

namespace {

// KEYS tasks; ARGV group, consumer, entry ids: `claim` (Lua, given the entry ARGV[i] and its pending
// record p[1]) for each entry this consumer still owns (XPENDING says so); one reclaimed by another node
// stays its. A deleted round (a monitor's) has nothing left to hold. Returns how many it claimed.
redis::Script owned_entries_script(std::string_view claim) {
  std::string text = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
)lua";
  text += claim;
  text += R"lua(
    n = n + 1
  end
end
return n
)lua";
  return {std::move(text), {}};
}

}  // namespace

redis::Script extend_script() {
  // Resets the idle time of the entries (XCLAIM JUSTID: the delivery count unchanged).
  return owned_entries_script("    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')");
}

redis::Script release_script() {
  // Hands the entries back to the group at once: marked idle for long, so the next node's XAUTOCLAIM
  // takes them. Their delivery count goes back by one (RETRYCOUNT), as XAUTOCLAIM counts one: a task
  // handed back unrun has not been tried.
  return owned_entries_script(R"lua(    local count = math.max(0, tonumber(p[1][4]) - 1)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', 1000000000000, 'RETRYCOUNT', count, 'JUSTID'))lua");
}

namespace {

// Runs `fn` against Redis, retrying while it is unavailable, for at most job.wait in all.
template <typename Fn>
auto with_redis(JobHandle& job, Fn&& fn) {
  const auto deadline = std::chrono::steady_clock::now() + job.wait;
  for (;;) {
    try {
      job.client.connect_within(std::max(std::chrono::milliseconds(1),
                                         std::chrono::duration_cast<std::chrono::milliseconds>(
                                             deadline - std::chrono::steady_clock::now())));
      return fn();
    } catch (const redis::ConnectionError& e) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

int unavailable(const std::exception& e) {
  std::cerr << "concurrent_bigmodel: " << e.what() << "\n";
  return kExitAborted;
}

// A fleet command's exit status for what the job or Redis said instead of an answer: 2 for other
// settings (or a job or round that is not there), 3 for Redis unavailable, refusing, or unreadable.
template <typename Fn>
int as_command(Fn&& fn) {
  try {
    return fn();
  } catch (const SettingsMismatch& e) {
    std::cerr << "concurrent_bigmodel: " << e.what() << "\n";
    return kExitUsage;
  } catch (const redis::ConnectionError& e) {
    return unavailable(e);
  } catch (const redis::ServerError& e) {
    return unavailable(e);
  } catch (const redis::ProtocolError& e) {
    return unavailable(e);
  }
}

}  // namespace

namespace {

struct JobCounts {
  std::uint64_t total = 0;
  bool complete = false;  // the submit read its whole input
  std::uint64_t submitted = 0;
  std::uint64_t done = 0;
  std::uint64_t repeated = 0;  // occurrences after the first of a repeated topic (never run)
  std::uint64_t pending = 0;
  std::int64_t created = 0;
};

std::uint64_t to_u64(const redis::Reply& r) {
  if (r.is_nil()) return 0;
  if (r.type == redis::Reply::Type::integer) return static_cast<std::uint64_t>(std::max(0LL, r.integer));
  std::uint64_t v = 0;
  const auto& s = r.as_string();
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// The counts of the round `keys` names.
JobCounts counts_of(JobHandle& job, const JobKeys& keys) {
  JobCounts c;
  if (job.client.command_ok({"HEXISTS", keys.meta, "settings"}).as_integer() == 0) {
    throw SettingsMismatch("job '" + job.name + "' does not exist in " + job.client.url().describe());
  }
  auto meta = job.client.command_ok({"HMGET", keys.round_meta, "total", "complete", "submitted", "created"});
  if (keys.round > 0 && meta.at(3).is_nil()) {
    throw SettingsMismatch("round " + std::to_string(keys.round) + " of job '" + job.name +
                           "' is not in Redis (a monitor keeps its current round and the one before)");
  }
  c.total = to_u64(meta.at(0));
  c.complete = !meta.at(1).is_nil() && meta.at(1).as_string() == "1";
  c.submitted = to_u64(meta.at(2));
  c.created = static_cast<std::int64_t>(to_u64(meta.at(3)));
  c.done = to_u64(job.client.command_ok({"HLEN", keys.done}));
  c.repeated = to_u64(job.client.command_ok({"HLEN", keys.dups}));
  const auto p = job.client.command({"XPENDING", keys.tasks, JobKeys::kGroup});
  if (!p.is_error()) c.pending = to_u64(p.at(0));
  return c;
}

bool job_finished(const JobCounts& c) { return c.complete && c.done + c.repeated >= c.total; }

// A round's stream and group, and when it started; idempotent.
void create_round(JobHandle& job, const JobKeys& keys) {
  auto& c = job.client;
  c.command_ok({"HSETNX", keys.round_meta, "created", std::to_string(now_ms())});
  const redis::Reply g = c.command({"XGROUP", "CREATE", keys.tasks, JobKeys::kGroup, "0", "MKSTREAM"});
  if (g.is_error() && !g.str.starts_with("BUSYGROUP")) throw redis::ServerError("Redis XGROUP CREATE failed: " + g.str);
}

struct Enqueued {
  std::uint64_t count = 0, added = 0, invalid = 0;
  bool complete = false;  // the whole input is in (false: stopped on the way)
};

// Enqueues the round's topics (the whole input, read as a local run reads it) past the round's cursor,
// then marks the round complete. `stopped` is asked between batches: true leaves the round incomplete
// (a later submit, or the next leader, goes on from the cursor).
Enqueued enqueue_round(JobHandle& job, const JobKeys& keys, const RunConfig& config,
                       const std::function<bool()>& stopped) {
  TopicPlan plan(config, [] { return false; });
  check_placeholders(config, plan.field_names());
  plan.require_topics();
  redis::Script enqueue = enqueue_script();
  TopicPlan::Round round = plan.next_round();
  const std::vector<std::uint64_t>& repeated = round.survey.duplicated;  // sorted
  std::unordered_map<std::string, std::uint64_t> first_ids;             // repeated topics only
  Enqueued n;
  std::vector<std::string> args;
  std::uint64_t first = 0;
  bool gone = false;  // the round was deleted under a leader that no longer leads
  auto flush = [&] {
    if (args.size() <= 2) return;
    args[1] = std::to_string((args.size() - 2) / 3);
    const auto r = with_redis(job, [&] {
      return job.client.eval(enqueue, {keys.round_meta, keys.tasks, keys.dups}, args);
    });
    if (r.as_integer() < 0) gone = true;
    else n.added += static_cast<std::uint64_t>(r.as_integer());
  };
  auto start_batch = [&] { args.assign({std::to_string(first), "0"}); };
  start_batch();
  while (auto t = round.source->next()) {
    for (const auto& bad : round.source->take_invalid_lines()) {
      std::cerr << "concurrent_bigmodel: " << config.topics_file << " line " << bad.line_number
                << " skipped: " << bad.reason << "\n";
    }
    if (args.size() == 2) first = t->id;
    if (t->id != first + (args.size() - 2) / 3) {  // ids are consecutive positions; be safe anyway
      flush();
      first = t->id;
      start_batch();
    }
    if (args.size() == 2) args[0] = std::to_string(first);
    // A repeated topic (the round's survey found its hash more than once) after its first occurrence:
    // reported with the first one's record, never run.
    std::string dup_of;
    if (std::binary_search(repeated.begin(), repeated.end(), task_hash(t->topic, t->fields))) {
      const auto [it, first_time] = first_ids.try_emplace(task_key(t->topic, t->fields), t->id);
      if (!first_time) dup_of = std::to_string(it->second);
    }
    args.push_back(t->topic);
    args.push_back(encode_fields(t->fields));
    args.push_back(std::move(dup_of));
    ++n.count;
    if ((args.size() - 2) / 3 >= 200) {
      flush();
      if (gone || stopped()) return n;
      first = t->id + 1;
      start_batch();
    }
  }
  flush();
  if (gone) return n;
  n.invalid = round.source->invalid_count();
  with_redis(job, [&] {
    job.client.command_ok({"HSET", keys.round_meta, "total", std::to_string(n.count), "complete", "1"});
    return 0;
  });
  n.complete = true;
  return n;
}

void print_enqueued(const std::string& name, const JobKeys& keys, const Enqueued& n) {
  std::cerr << "concurrent_bigmodel: job " << name;
  if (keys.round > 0) std::cerr << " round " << keys.round;
  std::cerr << ": " << n.count << " topics (" << n.added << " added now, " << n.count - n.added << " already there)";
  if (n.invalid > 0) std::cerr << ", " << n.invalid << " invalid lines skipped";
  std::cerr << "\n";
}

// The job's kind: a one-round job and a monitor (and monitors of different --iterations) never mix.
void join_kind(JobHandle& job, int iterations) {
  auto& c = job.client;
  // A one-round job from before monitors existed has no `iterations`, but its round's fields.
  const auto old = c.command_ok({"HMGET", job.keys.meta, "created", "submitted"});
  const bool one_round_already = !old.at(0).is_nil() || !old.at(1).is_nil();
  c.command_ok({"HSETNX", job.keys.meta, "iterations", std::to_string(one_round_already ? 1 : iterations)});
  const std::uint64_t theirs = to_u64(c.command_ok({"HGET", job.keys.meta, "iterations"}));
  if (theirs != static_cast<std::uint64_t>(iterations)) {
    throw SettingsMismatch("job '" + job.name + "' was submitted with other settings: --iterations: " +
                           std::to_string(theirs) + " in the job, " + std::to_string(iterations) + " now");
  }
}

// The monitor's next round, if this process still leads and the job is still at round `from`: the
// round's keys and group, then `round` moves, then the round before `from` goes (a monitor's Redis holds
// two rounds, whatever it runs for). One script: a leader that lost its lease changes nothing.
redis::Script advance_script() {
  // KEYS meta, leader, next round_meta, next tasks, then (optional) the old round's meta, tasks, results,
  // done, dups; ARGV holder, from, to, now (ms), group. 1 when advanced, 0 when not this leader's to do.
  return {R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'round') or '0') ~= ARGV[2] then return 0 end
redis.call('HSETNX', KEYS[3], 'created', ARGV[4])
redis.pcall('XGROUP', 'CREATE', KEYS[4], ARGV[5], '0', 'MKSTREAM')
redis.call('HSET', KEYS[1], 'round', ARGV[3])
if #KEYS > 4 then redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]) end
return 1
)lua", {}};
}

bool advance(JobHandle& job, redis::Script& script, const std::string& holder, std::uint32_t from) {
  const JobKeys next(job.name, from + 1);
  std::vector<std::string> keys{job.keys.meta, job.keys.leader, next.round_meta, next.tasks};
  if (from > 1) {
    const JobKeys old(job.name, from - 1);
    keys.insert(keys.end(), {old.round_meta, old.tasks, old.results, old.done, old.dups});
  }
  return with_redis(job, [&] {
    return job.client.eval(script, keys, {holder, std::to_string(from), std::to_string(from + 1),
                                          std::to_string(now_ms()), JobKeys::kGroup});
  }).as_integer() == 1;
}

// A digest of the topics file's bytes (FNV-1a): a round resumed by another leader is resumed from the
// same list. "" when the input is not a regular file (it cannot be read twice).
std::string input_digest(const RunConfig& config) {
  std::error_code ec;
  if (config.topics_file.empty() || !std::filesystem::is_regular_file(config.topics_file, ec)) return "";
  std::ifstream in(config.topics_file, std::ios::binary);
  std::uint64_t h = kFnv1a64Offset;
  std::array<char, 65536> buf{};
  while (in) {
    in.read(buf.data(), buf.size());
    h = fnv1a64(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())), h);
  }
  return std::to_string(h);
}

// A monitor's rounds while this process leads (docs/fleet.md, "Fleet monitors"). Returns when the
// monitor is finished (true) or when it must stop leading: a signal, the lease lost, or the round moved
// on without it (false).
bool lead(JobHandle& job, const RunConfig& config, const MonitorOptions& monitor, StopFlag& stop,
          const std::atomic<bool>& lost) {
  auto& c = job.client;
  redis::Script advance_ = advance_script();
  auto leading = [&] { return stop.signal() == 0 && !lost.load(); };
  std::uint32_t r = with_redis(job, [&] { return current_round(job); });
  if (r == 0) {
    if (!advance(job, advance_, monitor.holder, 0)) return false;
    r = 1;
  }
  for (;;) {
    const JobKeys keys(job.name, r);
    // The round's counts; nullopt when it is gone (the rounds moved on without this leader).
    auto counts = [&]() -> std::optional<JobCounts> {
      try {
        return with_redis(job, [&] { return counts_of(job, keys); });
      } catch (const SettingsMismatch&) {
        return std::nullopt;
      }
    };
    const auto at_start = counts();
    if (!at_start) return false;
    if (!at_start->complete) {
      // The round's list: the one it started with. A leader taking over with another file (it changed,
      // or this machine's copy differs) ends the round with what is enqueued; the next round reads it.
      const std::string digest = input_digest(config);
      const auto stored = with_redis(job, [&] {
        if (!digest.empty()) c.command_ok({"HSETNX", keys.round_meta, "input", digest});
        return c.command_ok({"HGET", keys.round_meta, "input"});
      });
      if (!digest.empty() && !stored.is_nil() && stored.as_string() != digest) {
        std::cerr << "concurrent_bigmodel: job " << job.name << " round " << r
                  << ": the topics file differs from the one the round started with; the round ends with the "
                  << "topics already enqueued\n";
        with_redis(job, [&] {
          const auto cursor = c.command_ok({"HGET", keys.round_meta, "submitted"});
          return c.command_ok({"HSET", keys.round_meta, "total", std::to_string(to_u64(cursor)), "complete", "1"});
        });
      } else {
        const Enqueued n = enqueue_round(job, keys, config, [&] { return !leading(); });
        if (!n.complete) return false;
        print_enqueued(job.name, keys, n);
      }
    }
    // Until the round is complete: every result in (the nodes' work). A round moved on by another
    // leader (this one lost its lease unawares) ends this leadership.
    for (;;) {
      if (with_redis(job, [&] { return current_round(job); }) != r) return false;
      const auto now = counts();
      if (!now) return false;
      if (job_finished(*now)) break;
      if (stop.wait_for(std::chrono::milliseconds(200)) || lost.load()) return false;
    }
    std::cerr << "concurrent_bigmodel: job " << job.name << " round " << r << " complete\n";
    if (monitor.iterations != 0 && r >= static_cast<std::uint32_t>(monitor.iterations)) {
      with_redis(job, [&] { return c.command_ok({"HSET", job.keys.meta, "finished", "1"}); });
      return true;
    }
    // --delay between rounds (a new leader waits it again: a pause is never shorter than asked).
    if (stop.wait_for(config.delay) || lost.load()) return false;
    if (!advance(job, advance_, monitor.holder, r)) return false;
    ++r;
  }
}

int submit_monitor(JobHandle& job, const RunConfig& config, const redis::RedisUrl& url,
                   const MonitorOptions& monitor, StopFlag& stop) {
  redis::Client lease_client(url, redis::Client::Options{});
  LeaderLease lease(lease_client, job.keys.leader, monitor.holder, monitor.leader_ttl);
  std::string told;  // the leader a standby last named
  for (;;) {
    if (stop.signal() != 0) return 128 + stop.signal();
    bool leads = false;
    try {
      if (to_u64(job.client.command_ok({"HGET", job.keys.meta, "finished"})) == 1) {
        std::cerr << "concurrent_bigmodel: job " << job.name << ": the monitor has finished its rounds\n";
        return kExitAllSucceeded;
      }
      lease_client.connect_within(job.wait);
      leads = lease.take();
      if (!leads) {
        const std::string holder = lease.holder_now();
        if (holder != told) {
          std::cerr << "concurrent_bigmodel: job " << job.name << ": standby; the leader is "
                    << (holder.empty() ? "gone" : holder) << "\n";
          told = holder;
        }
      }
    } catch (const std::runtime_error& e) {
      // Redis unavailable or refusing: a standby waits for it, and says so once.
      if (told != e.what()) std::cerr << "concurrent_bigmodel: job " << job.name << ": standby: " << e.what() << "\n";
      told = e.what();
      leads = false;
      try {
        job.client.connect_within(std::chrono::milliseconds(1));
      } catch (const std::runtime_error&) {
        // the next turn tries again
      }
    }
    if (!leads) {
      stop.wait_for(lease.renew_interval());
      continue;
    }
    std::cerr << "concurrent_bigmodel: job " << job.name << ": leading as " << monitor.holder << "\n";
    told.clear();
    // The lease is renewed every third of its time on a thread of its own (enqueueing a long list
    // must not let it lapse). It counts as lost when a renewal says so, or when none has succeeded for
    // two thirds of the lease (from when the last good one was sent): this leader stops before a
    // standby can take over. The round moves only by the advance script, which checks the lease too.
    std::atomic<bool> lost{false};
    StopFlag renewer_stop;
    std::thread renewer([&] {
      auto last_ok = std::chrono::steady_clock::now();
      while (!renewer_stop.wait_for(lease.renew_interval())) {
        const auto sent = std::chrono::steady_clock::now();
        try {
          if (lease.renew()) last_ok = sent;
          else lost = true;
        } catch (const std::runtime_error&) {
          // Redis unavailable: the deadline below decides.
        }
        if (std::chrono::steady_clock::now() - last_ok >= monitor.leader_ttl * 2 / 3) lost = true;
        if (lost) return;
      }
    });
    auto hand_over = [&] {
      renewer_stop.set(1);
      renewer.join();
      try {
        lease.release();  // a signal or the end hands over at once; a lost lease is not ours to release
      } catch (const std::runtime_error&) {
        // Redis unavailable: the lease lapses on its own.
      }
    };
    bool finished = false;
    try {
      finished = lead(job, config, monitor, stop, lost);
    } catch (...) {
      hand_over();
      throw;
    }
    hand_over();
    if (finished) return kExitAllSucceeded;
    if (stop.signal() == 0) {
      std::cerr << "concurrent_bigmodel: job " << job.name << ": no longer the leader ("
                << (lost ? "its lease was lost" : "the rounds moved on without it") << "); standing by\n";
    }
  }
}

}  // namespace

std::uint32_t current_round(JobHandle& job) {
  return static_cast<std::uint32_t>(
      std::min<std::uint64_t>(UINT32_MAX, to_u64(job.client.command_ok({"HGET", job.keys.meta, "round"}))));
}

int submit(const RunConfig& config, const redis::RedisUrl& url, const std::string& name,
           std::chrono::milliseconds wait, const MonitorOptions& monitor, StopFlag& stop) {
  JobHandle job(url, name, wait);
  return as_command([&] {
    {
      // The input is checked before anything reaches Redis.
      TopicPlan plan(config, [] { return false; });
      check_placeholders(config, plan.field_names());
      plan.require_topics();
    }
    with_redis(job, [&] {
      join_job(job, JournalSettings::of(config), config.input_format, true);
      join_kind(job, monitor.iterations);
      if (monitor.iterations == 1) create_round(job, job.keys);
      return 0;
    });
    if (monitor.iterations != 1) return submit_monitor(job, config, url, monitor, stop);
    const Enqueued n = enqueue_round(job, job.keys, config, [&] { return stop.signal() != 0; });
    if (!n.complete) {
      std::cerr << "concurrent_bigmodel: job " << name << ": stopped after " << n.count
                << " topics; the same submit again goes on from there\n";
      return 128 + stop.signal();
    }
    print_enqueued(name, job.keys, n);
    std::cout << name << std::endl;
    return kExitAllSucceeded;
  });
}

namespace {

// One report of what is done now in the round `keys` names. Returns the exit status it stands for.
int write_report_once(JobHandle& job, const JobKeys& keys, const RunConfig& config,
                      const std::filesystem::path& output) {
  const JobCounts counts = counts_of(job, keys);
  RunTotals totals;
  // Repeated topics: first occurrence -> the later ones, each reported with a copy of its record.
  std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> copies_of;
  if (counts.repeated > 0) {
    const auto kv = job.client.command_ok({"HGETALL", keys.dups});
    for (std::size_t i = 0; i + 1 < kv.as_array().size(); i += 2) {
      copies_of[to_u64(kv.at(i + 1))].push_back(to_u64(kv.at(i)));
    }
  }
  // First pass: the totals (the summary comes first in the file); second: the records.
  // The results stream grows while the report is written: both passes read up to where the first ended.
  std::string last = "-";
  auto each_record = [&](const std::function<void(std::string_view, const TaskResult&)>& fn, std::string end) {
    std::string from = "-";
    for (;;) {
      if (end == "-") break;  // the first pass found nothing
      const auto r = job.client.command_ok({"XRANGE", keys.results, from, end, "COUNT", "1000"});
      const auto& entries = r.as_array();
      if (entries.empty()) break;
      for (const auto& e : entries) {
        const auto& kv = e.at(1).as_array();
        for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
          if (kv[i].as_string() != "record") continue;
          std::string why;
          const auto rec = decode_result_record(kv[i + 1].as_string(), why);
          if (!rec) throw redis::ProtocolError("job '" + job.name + "': a result that is not a record: " + why);
          fn(kv[i + 1].as_string(), *rec);
          if (const auto it = copies_of.find(rec->id); it != copies_of.end()) {
            for (const std::uint64_t dup : it->second) {
              const TaskResult copy = copy_for_duplicate(*rec, dup);
              fn(encode_task_result(copy), copy);
            }
          }
        }
      }
      last = entries.back().at(0).as_string();
      from = "(" + last;
    }
  };
  each_record([&](std::string_view, const TaskResult& r) { totals.add(r); }, "+");
  const bool finished = job_finished(counts);
  ReportSummary summary;
  summary.totals = totals;
  summary.prices = config.prices.get();
  summary.search_engine = config.pipeline.search_settings.engine;
  summary.started = WallClock::time_point(std::chrono::milliseconds(counts.created));
  summary.finished = WallClock::now();
  summary.took = std::chrono::duration_cast<Clock::duration>(summary.finished - summary.started);
  summary.iterations_completed = finished ? 1 : 0;
  summary.interrupted = !finished;
  summary.exit_status = !finished ? kExitJobIncomplete : totals.all_succeeded() ? kExitAllSucceeded : kExitSomeFailed;
  AtomicFile out(output, config.output_mode);
  ReportWriter report([&](std::string_view piece) { out.write(piece); }, summary, [&](JsonWriter& w) {
    w.Key("fleet");
    w.StartObject();
    write_key_string(w, "job", job.name);
    if (keys.round > 0) {
      w.Key("round");
      w.Uint(keys.round);
    }
    w.Key("topics");
    w.Uint64(counts.total);
    w.Key("complete");
    w.Bool(finished);
    w.EndObject();
  });
  each_record([&](std::string_view json, const TaskResult&) { report.add_encoded(json); }, last);
  // A monitor's round deleted while it was read (the leader moved two rounds on): no report of half of it.
  if (keys.round > 0 && job.client.command_ok({"EXISTS", keys.round_meta}).as_integer() == 0) {
    throw SettingsMismatch("round " + std::to_string(keys.round) + " of job '" + job.name +
                           "' left Redis while its report was written (a monitor keeps its current round and the "
                           "one before)");
  }
  report.finish();
  out.commit();
  return summary.exit_status;
}

}  // namespace

// The round a report is of: a one-round job's only one; a monitor's `asked`, or its newest complete one
// (the current one before any is complete).
JobKeys report_round(JobHandle& job, std::uint32_t asked) {
  const std::uint32_t current = current_round(job);
  if (current == 0) {
    if (asked > 1) throw SettingsMismatch("--round " + std::to_string(asked) + ": job '" + job.name + "' has one round");
    return job.keys;
  }
  if (asked > 0) {
    if (asked > current || asked + 1 < current) {
      throw SettingsMismatch("--round " + std::to_string(asked) + ": job '" + job.name + "' holds rounds " +
                             (current > 1 ? std::to_string(current - 1) + " and " : std::string()) +
                             std::to_string(current));
    }
    return JobKeys(job.name, asked);
  }
  JobKeys keys(job.name, current);
  if (current > 1 && !job_finished(counts_of(job, keys))) return JobKeys(job.name, current - 1);
  return keys;
}

int collect(const RunConfig& config, const redis::RedisUrl& url, const std::string& name,
            const std::filesystem::path& output, bool follow, std::chrono::milliseconds wait, std::uint32_t round) {
  JobHandle job(url, name, wait);
  return as_command([&] {
    const JobKeys keys = with_redis(job, [&] { return report_round(job, round); });
    for (;;) {
      const int code = with_redis(job, [&] { return write_report_once(job, keys, config, output); });
      if (!follow || code != kExitJobIncomplete) {
        std::cerr << "concurrent_bigmodel: job " << name
                  << (keys.round > 0 ? " round " + std::to_string(keys.round) : std::string()) << ": report written to "
                  << output.string()
                  << (code == kExitJobIncomplete ? " (the job is not complete yet)" : "") << "\n";
        return code;
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));  // --follow: the report kept current
    }
  });
}

int status(const redis::RedisUrl& url, const std::string& name, std::chrono::milliseconds wait) {
  JobHandle job(url, name, wait);
  return as_command([&] {
    return with_redis(job, [&] {
      const std::uint32_t round = current_round(job);
      const JobKeys keys(job.name, round);
      const JobCounts c = counts_of(job, keys);
      const auto stats = job.client.command_ok(
          {"HMGET", job.keys.stats, "succeeded", "failed", "duplicates", "reclaimed", "dead_lettered"});
      const std::uint64_t in_flight = c.pending;
      const std::uint64_t settled = c.done + c.repeated + in_flight;
      const std::uint64_t queued = c.submitted > settled ? c.submitted - settled : 0;
      std::cout << "job " << name << (job_finished(c) ? " (complete)" : c.complete ? "" : " (still being submitted)")
                << "\n";
      if (round > 0) {
        const auto m = job.client.command_ok({"HMGET", job.keys.meta, "iterations", "finished"});
        const std::uint64_t iterations = to_u64(m.at(0));
        const std::string leader = [&] {
          const redis::Reply l = job.client.command_ok({"GET", job.keys.leader});
          return l.is_nil() ? std::string("none") : l.as_string();
        }();
        std::cout << "round " << round << " of " << (iterations == 0 ? std::string("until stopped") : std::to_string(iterations))
                  << (to_u64(m.at(1)) == 1 ? " (finished)" : "") << "\n";
        std::cout << "leader " << leader << "\n";
      }
      std::cout << "topics " << (c.complete ? std::to_string(c.total) : std::to_string(c.submitted) + "+") << "\n";
      std::cout << "queued " << queued << "\n";
      std::cout << "in_flight " << in_flight << "\n";
      std::cout << "done " << c.done << "\n";
      std::cout << "repeated " << c.repeated << "\n";
      std::cout << "succeeded " << to_u64(stats.at(0)) << "\n";
      std::cout << "failed " << to_u64(stats.at(1)) << "\n";
      std::cout << "duplicates " << to_u64(stats.at(2)) << "\n";
      std::cout << "reclaimed " << to_u64(stats.at(3)) << "\n";
      std::cout << "dead_lettered " << to_u64(stats.at(4)) << "\n";
      const auto nodes = job.client.command_ok({"HGETALL", job.keys.nodes});
      const auto& kv = nodes.as_array();
      const std::int64_t now = now_ms();
      for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
        const auto seen = static_cast<std::int64_t>(to_u64(kv[i + 1]));
        std::cout << "node " << kv[i].as_string() << " last_seen_ms_ago " << std::max<std::int64_t>(0, now - seen)
                  << "\n";
      }
      std::cout << std::flush;
      return kExitAllSucceeded;
    });
  });
}

}  // namespace cbm::fleet
