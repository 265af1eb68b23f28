#include "report_writer.hpp"

namespace cbm {
namespace {

template <typename Duration>
double seconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

void write_key_nullable(JsonWriter& w, const char* key, const std::optional<std::string>& value) {
  if (value) {
    write_key_string(w, key, *value);
  } else {
    w.Key(key);
    w.Null();
  }
}

void write_summary(JsonWriter& w, const ReportSummary& s) {
  w.Key("summary");
  w.StartObject();
  write_totals(w, s.totals);
  if (s.prices != nullptr) write_estimated_cost(w, s.totals, *s.prices, s.search_engine);
  w.Key("total_time");
  w.Double(seconds(s.took));
  w.Key("throughput_tasks_per_second");
  w.Double(s.took.count() <= 0 ? 0.0 : static_cast<double>(s.totals.total) / seconds(s.took));
  if (s.concurrency) {
    w.Key("concurrency");
    w.Uint64(*s.concurrency);
  }
  w.Key("iterations_completed");
  w.Uint64(s.iterations_completed);
  w.Key("invalid_input_lines");
  w.Uint64(s.invalid_input_lines);
  w.Key("interrupted");
  w.Bool(s.interrupted);
  w.Key("interrupted_by_signal");
  s.interrupted_by_signal != 0 ? w.Int(s.interrupted_by_signal) : w.Null();
  w.Key("aborted");
  w.Bool(s.abort_reason.has_value());
  write_key_nullable(w, "abort_reason", s.abort_reason);
  w.Key("exit_status");
  w.Int(s.exit_status);
  write_key_string(w, "started_at", iso8601(s.started));
  write_key_string(w, "finished_at", iso8601(s.finished));
  w.EndObject();
}

}  // namespace

void write_estimated_cost(JsonWriter& w, const RunTotals& totals, const PriceTable& prices,
                          std::string_view search_engine) {
  const CostFigure cost = cost_of(totals.spend, prices, search_engine);
  w.Key("estimated_cost");
  w.StartObject();
  w.Key("amount");
  cost.known() ? w.Double(cost.amount) : w.Null();
  write_key_string(w, "currency", prices.currency);
  write_key_string(w, "price_table", prices.origin);
  write_key_string(w, "price_table_date", prices.date);
  w.Key("unpriced");
  w.StartArray();
  for (const auto& u : cost.unpriced) w.String(u.c_str(), static_cast<rapidjson::SizeType>(u.size()));
  w.EndArray();
  w.Key("web_search_calls");
  w.Int64(totals.spend.search_calls);
  w.EndObject();
}

ReportWriter::ReportWriter(Sink sink, const ReportSummary& summary, const Sections& sections)
    : sink_(std::move(sink)) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  write_summary(w, summary);
  if (sections) sections(w);
  w.Key("results");
  w.StartArray();
  // The writer is left with the array open: the records stream in after it, and finish() closes both.
  sink_(std::string_view(buf.GetString(), buf.GetSize()));
}

void ReportWriter::add(const TaskResult& record) { add_encoded(encode_task_result(record)); }

void ReportWriter::add_encoded(std::string_view record) {
  if (!first_) sink_(",");
  first_ = false;
  sink_(record);
}

void ReportWriter::add_unread_encoded(std::string_view entry) {
  if (!unread_.empty()) unread_ += ',';
  unread_ += entry;
}

void ReportWriter::finish() {
  sink_("],\"not_read\":[");
  sink_(unread_);
  sink_("]}\n");
}

void write_run_config(JsonWriter& w, const RunConfig& config, const std::filesystem::path& journal) {
  w.Key("config");
  w.StartObject();
  write_key_string(w, "mode", to_string(config.mode));
  w.Key("concurrency");
  w.Int(config.concurrency);
  w.Key("iterations");
  w.Int(config.iterations);
  w.Key("rpm");
  w.Int64(config.rate.requests_per_minute);
  w.Key("tpm");
  w.Int64(config.rate.tokens_per_minute);
  w.Key("timeout");
  w.Double(seconds(config.timeout));
  w.Key("delay");
  w.Double(seconds(config.delay));
  w.Key("max_retries");
  w.Int(config.retry.max_retries);
  write_key_string(w, "chat_model", config.pipeline.chat_model);
  write_key_string(w, "tool_model", config.pipeline.tool_model);
  w.Key("search");
  w.Bool(config.pipeline.search);
  write_key_string(w, "base_url", config.client.base_url);
  write_key_string(w, "journal", journal.string());
  w.Key("keep_rounds");
  w.Int(config.keep_rounds);
  w.EndObject();
}

void write_rounds(JsonWriter& w, const std::map<std::uint32_t, RoundSummary>& rounds) {
  w.Key("rounds");
  w.StartArray();
  for (const auto& [number, r] : rounds) {
    w.StartObject();
    w.Key("round");
    w.Uint(number);
    w.Key("planned_tasks");
    r.finished ? w.Uint64(r.planned) : w.Null();
    write_totals(w, r.totals);
    write_key_string(w, "started_at", iso8601(r.started));
    write_key_nullable(w, "finished_at", r.finished ? std::optional(iso8601(*r.finished)) : std::nullopt);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace cbm
