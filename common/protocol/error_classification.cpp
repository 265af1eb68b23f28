#include "error_classification.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>

namespace cbm {
namespace {

using std::chrono::system_clock;
using enum ErrorClass;

// Ordered by code. The class is what the code means for the run (docs/protocol.md, "Errors"):
// run_fatal stops the run (every task would fail the same way: the account, the key, the model or
// the plan), task_fatal fails the task (this request is wrong), retryable retries it with backoff
// within --max-retries, wait_until pauses every task until the cap resets.
constexpr std::array<ErrorCodeInfo, 39> kTable{{
    {500, retryable, "internal error"},
    {1000, run_fatal, "authentication failed"},
    {1001, run_fatal, "no Authorization header"},
    {1002, run_fatal, "invalid authentication token"},
    {1003, run_fatal, "authentication token expired"},
    {1004, run_fatal, "authentication failed"},
    {1100, retryable, "account read/write error, try again later"},
    {1110, run_fatal, "account inactive"},
    {1111, run_fatal, "account does not exist"},
    {1112, run_fatal, "account locked"},
    {1113, run_fatal, "account in arrears: no balance"},
    {1120, retryable, "account access error, try again later"},
    {1121, run_fatal, "account locked for irregular activity"},
    {1200, task_fatal, "bad API call"},
    {1210, task_fatal, "invalid call parameters"},
    {1211, run_fatal, "model does not exist"},
    {1212, run_fatal, "call method not supported by this model"},
    {1213, task_fatal, "a required field is missing"},
    {1214, task_fatal, "a field is invalid"},
    {1215, task_fatal, "fields that exclude each other"},
    {1220, run_fatal, "no permission for this API"},
    {1221, run_fatal, "this API is offline"},
    {1222, run_fatal, "no such API"},
    {1230, retryable, "call process error"},
    // The pipeline sends the step again once with a fresh request_id (pipeline.cpp); a second 1231
    // fails the task.
    {1231, task_fatal, "duplicate request_id"},
    {1234, retryable, "network error"},
    {1261, task_fatal, "prompt too long"},
    {1300, task_fatal, "blocked by policy"},
    {1301, task_fatal, "unsafe content"},
    {1302, retryable, "too many requests in flight for this account"},
    {1303, retryable, "request frequency too high"},
    {1304, run_fatal, "daily call quota of this API reached"},
    {1305, retryable, "model overloaded platform-wide"},
    {1308, wait_until, "usage cap reached until its reset time"},
    {1309, run_fatal, "Coding Plan expired"},
    {1310, wait_until, "weekly or monthly cap reached until its reset time"},
    {1311, run_fatal, "the plan does not include this model"},
    {1312, retryable, "model busy"},
    {1313, run_fatal, "fair-use throttle (Coding Plan)"},
}};

std::optional<int> code_number(std::string_view code) {
  int n = 0;
  auto [end, ec] = std::from_chars(code.data(), code.data() + code.size(), n);
  if (ec != std::errc{} || end != code.data() + code.size()) return std::nullopt;
  return n;
}

// ---- Reset times ------------------------------------------------------------------------------------

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads 1..max_digits digits at `pos` (exactly `max_digits` when `exact`); advances `pos`.
std::optional<int> read_number(std::string_view s, std::size_t& pos, std::size_t max_digits, bool exact) {
  std::size_t end = pos;
  while (end < s.size() && end - pos < max_digits && is_digit(s[end])) ++end;
  if (end == pos || (exact && end - pos != max_digits)) return std::nullopt;
  int n = 0;
  std::from_chars(s.data() + pos, s.data() + end, n);
  pos = end;
  return n;
}

bool skip(std::string_view s, std::size_t& pos, std::string_view any_of) {
  if (pos < s.size() && any_of.find(s[pos]) != std::string_view::npos) {
    ++pos;
    return true;
  }
  return false;
}

bool starts_with_word(std::string_view s, std::size_t pos, std::string_view word) {
  if (s.size() - pos < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(s[pos + i])) != word[i]) return false;
  }
  return true;
}

// "+08:00", "+0800", "+08", "+8", "-05:30" at `pos`: the offset in minutes.
std::optional<int> read_numeric_offset(std::string_view s, std::size_t& pos) {
  if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-')) return std::nullopt;
  const int sign = s[pos] == '-' ? -1 : 1;
  std::size_t p = pos + 1;
  std::size_t digits_start = p;
  auto hh = read_number(s, p, 2, false);
  if (!hh) return std::nullopt;
  int minutes = 0;
  if (p - digits_start == 2) {
    std::size_t q = p;
    const bool colon = skip(s, q, ":");
    if (auto mm = read_number(s, q, 2, true)) {
      minutes = *mm;
      p = q;
    } else if (colon) {
      return std::nullopt;
    }
  }
  if (*hh > 14 || minutes > 59) return std::nullopt;
  pos = p;
  return sign * (*hh * 60 + minutes);
}

// The zone written after a time (spaces allowed before it); UTC+8 when none is written.
int read_zone_minutes(std::string_view s, std::size_t pos) {
  constexpr int kChina = 8 * 60;
  while (pos < s.size() && s[pos] == ' ') ++pos;
  if (pos >= s.size()) return kChina;
  if (auto offset = read_numeric_offset(s, pos)) return *offset;
  if (s[pos] == 'Z') return 0;
  for (std::string_view name : {std::string_view("UTC"), std::string_view("GMT")}) {
    if (starts_with_word(s, pos, name)) {
      std::size_t p = pos + name.size();
      if (auto offset = read_numeric_offset(s, p)) return *offset;
      return 0;
    }
  }
  if (starts_with_word(s, pos, "CST")) return kChina;  // China Standard Time, as the platform means it
  return kChina;
}

// A date and time starting at `pos`: "2026-05-25 19:22:49", "2026/5/25T19:22", with a zone after it.
std::optional<system_clock::time_point> read_date_time(std::string_view s, std::size_t pos) {
  using namespace std::chrono;
  if (pos > 0 && is_digit(s[pos - 1])) return std::nullopt;  // inside a longer number
  auto y = read_number(s, pos, 4, true);
  if (!y || !skip(s, pos, "-/.")) return std::nullopt;
  auto mo = read_number(s, pos, 2, false);
  if (!mo || !skip(s, pos, "-/.")) return std::nullopt;
  auto d = read_number(s, pos, 2, false);
  if (!d || !skip(s, pos, " T")) return std::nullopt;
  auto h = read_number(s, pos, 2, false);
  if (!h || !skip(s, pos, ":")) return std::nullopt;
  auto mi = read_number(s, pos, 2, true);
  if (!mi) return std::nullopt;
  int sec = 0;
  if (std::size_t p = pos; skip(s, p, ":")) {
    if (auto ss = read_number(s, p, 2, true)) {
      sec = *ss;
      pos = p;
      if (skip(s, p, ".")) {  // fractions of a second: ignored (the cap resets on the second)
        while (p < s.size() && is_digit(s[p])) ++p;
        pos = p;
      }
    }
  }
  const year_month_day date{year(*y), month(static_cast<unsigned>(*mo)), day(static_cast<unsigned>(*d))};
  if (!date.ok() || *h > 23 || *mi > 59 || sec > 60) return std::nullopt;
  const auto local = sys_days(date) + hours(*h) + minutes(*mi) + seconds(sec);
  return system_clock::time_point(local - minutes(read_zone_minutes(s, pos)));
}

// A standalone run of 10 or 13 digits: Unix seconds or milliseconds.
std::optional<system_clock::time_point> read_unix_time(std::string_view s) {
  for (std::size_t pos = 0; pos < s.size();) {
    if (!is_digit(s[pos])) {
      ++pos;
      continue;
    }
    std::size_t end = pos;
    while (end < s.size() && is_digit(s[end])) ++end;
    const std::size_t n = end - pos;
    if (n == 10 || n == 13) {
      std::int64_t v = 0;
      std::from_chars(s.data() + pos, s.data() + end, v);
      const auto ms = std::chrono::milliseconds(n == 10 ? v * 1000 : v);
      return system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(ms));
    }
    pos = end;
  }
  return std::nullopt;
}

bool contains(std::string_view text, std::string_view what) { return text.find(what) != std::string_view::npos; }

}  // namespace

std::span<const ErrorCodeInfo> error_code_table() { return kTable; }

const ErrorCodeInfo* find_error_code(std::string_view code) {
  const auto n = code_number(code);
  if (!n) return nullptr;
  const auto it = std::lower_bound(kTable.begin(), kTable.end(), *n,
                                   [](const ErrorCodeInfo& row, int c) { return row.code < c; });
  return it != kTable.end() && it->code == *n ? &*it : nullptr;
}

ErrorClass classify_http_error(int http_status, std::string_view code) {
  if (const ErrorCodeInfo* row = find_error_code(code)) return row->error_class;
  if (http_status == 401 || http_status == 403) return run_fatal;
  if (http_status == 408 || http_status == 409 || http_status == 429 || http_status >= 500) return retryable;
  if (http_status >= 400) return task_fatal;
  // A non-error status with an error body (some proxies do this): treat as transient.
  return retryable;
}

void classify_api_error(ApiError& error, system_clock::time_point now) {
  error.error_class = classify_http_error(error.http_status, error.code);
  // api.openai.com and servers like it refuse the platform's own fields (thinking, request_id, the
  // web_search tool) in every request: nothing would get through.
  if (error.http_status == 400 && contains(error.message, "Unrecognized request argument")) {
    error.error_class = run_fatal;
    error.message += " (this server accepts only OpenAI's request fields: try --api-flavor openai)";
    return;
  }
  if (error.error_class != wait_until) return;
  error.resume_at = quota_resume_at(error.message, now);
  if (!error.resume_at) error.message += " (no plausible reset time in the message: retried with backoff)";
}

std::optional<system_clock::time_point> parse_reset_time(std::string_view message) {
  for (std::size_t pos = 0; pos < message.size(); ++pos) {
    if (!is_digit(message[pos])) continue;
    if (auto t = read_date_time(message, pos)) return t;
  }
  return read_unix_time(message);
}

std::optional<system_clock::time_point> quota_resume_at(std::string_view message, system_clock::time_point now) {
  const auto t = parse_reset_time(message);
  if (!t || *t <= now || *t - now > kMaxQuotaWait) return std::nullopt;
  return t;
}

std::optional<ErrorClass> classify_finish_reason(std::string_view finish_reason) {
  if (finish_reason == "sensitive") return task_fatal;
  if (finish_reason == "network_error") return retryable;
  return std::nullopt;
}

std::optional<std::string> incomplete_answer(std::string_view finish_reason, std::string_view content) {
  if (finish_reason == "length") return "finish_reason length: the answer was cut at max_tokens";
  if (finish_reason == "model_context_window_exceeded") {
    return "finish_reason model_context_window_exceeded: the answer was cut at the model's context window";
  }
  const bool blank = std::all_of(content.begin(), content.end(),
                                 [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
  if (blank) return "the answer is empty";
  return std::nullopt;
}

}  // namespace cbm
