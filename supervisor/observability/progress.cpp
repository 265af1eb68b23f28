#include "progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <sstream>

namespace cbm {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kTtyInterval{200};

std::string fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string duration_text(double seconds) {
  if (seconds < 60) return fixed1(seconds) + "s";
  const auto s = static_cast<long long>(seconds);
  if (s < 3600) return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
  return std::to_string(s / 3600) + "h" + std::to_string((s % 3600) / 60) + "m";
}

}  // namespace

std::string local_time_of_day(WallClock::time_point t) {
  const std::time_t when = WallClock::to_time_t(t);
  std::tm local{};
  if (::localtime_r(&when, &local) == nullptr) return "?";
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d:%02d", local.tm_hour % 100, local.tm_min % 100);
  return buf;
}

Progress::Progress(const RunLedger& ledger, bool quiet, milliseconds plain_interval)
    : ledger_(ledger), enabled_(!quiet), tty_(::isatty(STDERR_FILENO) == 1), interval_(tty_ ? kTtyInterval : plain_interval) {}

Progress::~Progress() { finish(); }

void Progress::begin_round(std::uint32_t round, std::optional<std::size_t> expected) {
  const RunTotals t = ledger_.totals();
  std::lock_guard lock(mu_);
  round_ = round;
  expected_ = expected;
  done_at_round_start_ = t.total;
  attempts_at_round_start_ = t.attempts;
  round_started_ = std::chrono::steady_clock::now();
  last_draw_ = round_started_;
}

std::string Progress::line(const ExecutorGauges& g) const {
  const RunTotals t = ledger_.totals();
  std::lock_guard lock(mu_);
  const std::size_t done = t.total - done_at_round_start_;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - round_started_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const std::size_t retries = t.attempts > t.timed_tasks ? t.attempts - t.timed_tasks : 0;
  // A stream, not `"round " + std::to_string(...)`: g++ 12 at -O3 misreads that prepend to a temporary
  // as an overlapping memcpy (-Wrestrict, GCC bug 105329).
  std::ostringstream s;
  s << "round " << round_ << ": " << done;
  if (expected_) s << '/' << *expected_;
  s << " done (" << t.succeeded << " ok, " << t.failed << " failed";
  if (t.cancelled > 0) s << ", " << t.cancelled << " cancelled";
  s << ", run totals), " << g.in_flight << " in flight";
  if (g.limit > 0) s << " (limit " << g.limit << ')';
  s << ", " << fixed1(rate) << "/s";
  if (expected_ && rate > 0 && *expected_ > done) {
    s << ", ETA " << duration_text(static_cast<double>(*expected_ - done) / rate);
  }
  s << ", " << retries << " retries, " << g.restarts << " restarts";
  if (g.paused_until) s << ", paused until " << local_time_of_day(*g.paused_until) << " (" << g.paused_for << ")";
  return s.str();
}

void Progress::tick(const ExecutorGauges& gauges) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (now - last_draw_ < interval_) return;
    last_draw_ = now;
  }
  if (!tty_) {
    // A plain line says something only when something happened: an idle service or a monitor waiting
    // for its next round stays silent.
    const std::size_t finished = ledger_.totals().total;
    std::lock_guard lock(mu_);
    if (gauges.in_flight == 0 && finished == printed_total_) return;
    printed_total_ = finished;
  }
  const std::string text = line(gauges);
  if (tty_) {
    std::fprintf(stderr, "\r\x1b[2K%s", text.c_str());
    drawn_ = true;
  } else {
    std::fprintf(stderr, "concurrent_bigmodel: progress: %s\n", text.c_str());
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_ && drawn_) {
    std::fprintf(stderr, "\r\x1b[2K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

milliseconds Progress::next_due() const {
  if (!enabled_) return milliseconds(60000);
  std::lock_guard lock(mu_);
  const auto due = last_draw_ + interval_ - std::chrono::steady_clock::now();
  return std::max(milliseconds(1), std::chrono::ceil<milliseconds>(due));
}

}  // namespace cbm
