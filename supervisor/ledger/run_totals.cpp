#include "run_totals.hpp"

namespace cbm {
namespace {

double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

std::string not_read_text(const RunTotals& t) {
  if (t.not_read_unknown) return ", the rest of the input not read";
  if (t.not_read == 0) return {};
  std::string text = ", ";
  text += std::to_string(t.not_read);
  text += " not read";
  return text;
}

}  // namespace

void RunTotals::add(const TaskResult& r) {
  ++total;
  switch (r.status) {
    case TaskStatus::succeeded:
      ++succeeded;
      break;
    case TaskStatus::failed:
      ++failed;
      break;
    case TaskStatus::cancelled:
      ++cancelled;
      break;
  }
  attempts += static_cast<std::size_t>(r.attempts);
  if (r.attempts > 0) {
    ++timed_tasks;
    execution_time_sum += r.execution_time;
  }
  usage += r.usage;
  spend.add_record(r);
}

void RunTotals::add(const UnreadTopics& u) {
  if (const auto count = u.count()) {
    not_read += *count;
  } else {
    not_read_unknown = true;
  }
}

void write_totals(JsonWriter& w, const RunTotals& t) {
  w.Key("total_tasks");
  w.Uint64(t.total);
  w.Key("successful_tasks");
  w.Uint64(t.succeeded);
  w.Key("failed_tasks");
  w.Uint64(t.failed);
  w.Key("cancelled_tasks");
  w.Uint64(t.cancelled);
  const double total = t.total == 0 ? 1.0 : static_cast<double>(t.total);
  w.Key("success_rate");
  w.Double(100.0 * static_cast<double>(t.succeeded) / total);
  w.Key("failure_rate");
  w.Double(100.0 * static_cast<double>(t.failed) / total);
  w.Key("average_execution_time");
  w.Double(t.timed_tasks == 0 ? 0.0 : seconds(t.execution_time_sum) / static_cast<double>(t.timed_tasks));
  w.Key("total_attempts");
  w.Uint64(t.attempts);
  w.Key("retries");
  w.Uint64(t.attempts > t.timed_tasks ? t.attempts - t.timed_tasks : 0);
  w.Key("usage");
  write_usage(w, t.usage);
  w.Key("not_read");
  t.not_read_unknown ? w.Null() : w.Uint64(t.not_read);
}

std::string to_string(const RunTotals& t) {
  return std::to_string(t.total) + " tasks: " + std::to_string(t.succeeded) + " succeeded, " +
         std::to_string(t.failed) + " failed, " + std::to_string(t.cancelled) + " cancelled" + not_read_text(t);
}

}  // namespace cbm
