#include "langsmith_run.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <random>

namespace cbm {
namespace {

using std::chrono::microseconds;

std::int64_t epoch_us(WallClock::time_point t) {
  return std::chrono::duration_cast<microseconds>(t.time_since_epoch()).count();
}

WallClock::time_point to_us(WallClock::time_point t) {
  return WallClock::time_point(std::chrono::duration_cast<WallClock::duration>(microseconds(epoch_us(t))));
}

// Broken-down UTC time and the microseconds within the second (floor, also before 1970).
struct UtcParts {
  std::tm tm{};
  int micros = 0;
};

UtcParts utc_parts(WallClock::time_point t) {
  const std::int64_t us = epoch_us(t);
  std::int64_t secs = us / 1000000;
  std::int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  UtcParts p;
  const std::time_t tt = static_cast<std::time_t>(secs);
  gmtime_r(&tt, &p.tm);
  p.micros = static_cast<int>(frac);
  return p;
}

void write_key_raw_object(JsonWriter& w, const char* key, const std::string& json) {
  if (json.empty()) return;
  w.Key(key);
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}

void write_common(JsonWriter& w, const LangSmithRun& run) {
  write_key_string(w, "id", run.id);
  write_key_string(w, "trace_id", run.trace_id);
  write_key_string(w, "dotted_order", run.dotted_order);
  if (!run.is_root()) write_key_string(w, "parent_run_id", run.parent_run_id);
}

void write_ending(JsonWriter& w, const LangSmithRun& run) {
  if (run.end_time) write_key_string(w, "end_time", iso8601_us(*run.end_time));
  write_key_raw_object(w, "outputs", run.outputs);
  if (run.error) write_key_string(w, "error", *run.error);
}

}  // namespace

std::string uuid_v7(WallClock::time_point t) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const std::int64_t us = epoch_us(t);
  const auto ms = static_cast<std::uint64_t>(us / 1000);
  const auto sub_ms = static_cast<std::uint64_t>(us % 1000) * 4096 / 1000;  // 12 bits of the fraction
  const std::uint64_t high = (ms << 16) | (0x7ULL << 12) | sub_ms;
  const std::uint64_t low = (rng() & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // variant 10
  char out[37];
  std::snprintf(out, sizeof out, "%08llx-%04llx-%04llx-%04llx-%012llx",
                static_cast<unsigned long long>(high >> 32), static_cast<unsigned long long>((high >> 16) & 0xFFFF),
                static_cast<unsigned long long>(high & 0xFFFF), static_cast<unsigned long long>(low >> 48),
                static_cast<unsigned long long>(low & 0xFFFFFFFFFFFFULL));
  return out;
}

std::string dotted_order_stamp(WallClock::time_point t) {
  const UtcParts p = utc_parts(t);
  char out[96];  // room for any int the compiler cannot rule out
  std::snprintf(out, sizeof out, "%04d%02d%02dT%02d%02d%02d%06dZ", p.tm.tm_year + 1900, p.tm.tm_mon + 1,
                p.tm.tm_mday, p.tm.tm_hour, p.tm.tm_min, p.tm.tm_sec, p.micros);
  return out;
}

std::string iso8601_us(WallClock::time_point t) {
  const UtcParts p = utc_parts(t);
  char out[96];  // room for any int the compiler cannot rule out
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", p.tm.tm_year + 1900, p.tm.tm_mon + 1,
                p.tm.tm_mday, p.tm.tm_hour, p.tm.tm_min, p.tm.tm_sec, p.micros);
  return out;
}

std::size_t LangSmithRun::weight() const {
  return sizeof(LangSmithRun) + id.size() + trace_id.size() + parent_run_id.size() + dotted_order.size() +
         name.size() + run_type.size() + inputs.size() + outputs.size() + extra.size() +
         (error ? error->size() : 0);
}

LangSmithRun root_run(std::string name, std::string run_type, WallClock::time_point start) {
  LangSmithRun run;
  run.start_time = to_us(start);
  run.id = uuid_v7(run.start_time);
  run.trace_id = run.id;
  run.dotted_order = dotted_order_stamp(run.start_time) + run.id;
  run.name = std::move(name);
  run.run_type = std::move(run_type);
  return run;
}

LangSmithRun child_run(const LangSmithRun& parent, std::string name, std::string run_type,
                       WallClock::time_point start) {
  LangSmithRun run;
  run.start_time = std::max(to_us(start), parent.start_time);
  run.id = uuid_v7(run.start_time);
  run.trace_id = parent.trace_id;
  run.parent_run_id = parent.id;
  run.dotted_order = parent.dotted_order + "." + dotted_order_stamp(run.start_time) + run.id;
  run.name = std::move(name);
  run.run_type = std::move(run_type);
  return run;
}

void write_run_post(JsonWriter& w, const LangSmithRun& run, const std::string& session_name) {
  w.StartObject();
  write_common(w, run);
  write_key_string(w, "name", run.name);
  write_key_string(w, "run_type", run.run_type);
  write_key_string(w, "session_name", session_name);
  write_key_string(w, "start_time", iso8601_us(run.start_time));
  write_key_raw_object(w, "inputs", run.inputs);
  write_key_raw_object(w, "extra", run.extra);
  write_ending(w, run);
  w.EndObject();
}

void write_run_patch(JsonWriter& w, const LangSmithRun& run) {
  w.StartObject();
  write_common(w, run);
  write_ending(w, run);
  w.EndObject();
}

}  // namespace cbm
