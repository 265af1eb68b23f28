// LangSmith run records (docs/protocol.md, "LangSmith ingestion"): time-ordered ids, dotted orders, and
// the JSON of a run as `POST /runs/batch` takes it in its `post` and `patch` lists.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "result_codec.hpp"
#include "task.hpp"

namespace cbm {

// A UUID version 7 (RFC 9562) for time `t`: 48 bits of Unix milliseconds, then 12 bits of the
// sub-millisecond fraction (so ids made later sort later), then the variant and 62 random bits from a
// per-thread generator seeded from std::random_device. Lowercase, 8-4-4-4-12.
std::string uuid_v7(WallClock::time_point t);

// `t` in UTC as %Y%m%dT%H%M%S%fZ (six-digit microseconds, literal Z): a dotted_order segment's stamp.
std::string dotted_order_stamp(WallClock::time_point t);
// `t` in UTC as ISO-8601 with microseconds and a zone: 2025-01-02T03:04:05.123456Z.
std::string iso8601_us(WallClock::time_point t);

struct LangSmithRun {
  std::string id;
  std::string trace_id;       // the root's id (a root's is its own)
  std::string parent_run_id;  // empty for a root
  std::string dotted_order;   // root: <stamp><id>; child: <parent's dotted_order>.<stamp><id>
  std::string name;
  std::string run_type;  // chain | llm
  WallClock::time_point start_time{};
  std::optional<WallClock::time_point> end_time;  // nullopt: still open
  // JSON objects, already rendered; empty: not sent.
  std::string inputs;
  std::string outputs;
  std::string extra;
  std::optional<std::string> error;

  bool is_root() const { return parent_run_id.empty(); }
  // Bytes this record holds, for the sender's memory bound.
  std::size_t weight() const;
};

// A new trace's root, starting at `start` (kept to the microsecond, the precision of its stamp).
LangSmithRun root_run(std::string name, std::string run_type, WallClock::time_point start);
// A child of `parent`. Its start is clamped to the parent's: clocks of two processes may disagree by a
// little, and a child must never sort before its parent.
LangSmithRun child_run(const LangSmithRun& parent, std::string name, std::string run_type,
                       WallClock::time_point start);

// The run as an element of the batch's `post` list (every field set), or of its `patch` list (id,
// trace_id, dotted_order, parent_run_id, end_time, outputs, error).
void write_run_post(JsonWriter& w, const LangSmithRun& run, const std::string& session_name);
void write_run_patch(JsonWriter& w, const LangSmithRun& run);

}  // namespace cbm
