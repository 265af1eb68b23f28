// libFuzzer target: the readers of the other outside inputs must never crash, hang or over-allocate on
// any bytes: the topics file in each format (RowReader), a service request body (parse_bounded), the
// repair of a server's text (repair_utf8, cap_text), and a --price-file (parse_price_table: a table,
// or std::invalid_argument naming the file).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

#include "bounded_json.hpp"
#include "price_table.hpp"
#include "row_reader.hpp"
#include "wire_text.hpp"

namespace {

void read_rows(const std::uint8_t* data, std::size_t size, cbm::InputFormat format) {
  if (size == 0) return;
  std::FILE* in = ::fmemopen(const_cast<std::uint8_t*>(data), size, "r");
  if (in == nullptr) return;
  try {
    auto reader = cbm::RowReader::make(in, cbm::InputSpec{format, {"region"}});
    (void)reader->field_names();
    std::size_t kept = 0;
    while (reader->next()) kept += reader->take_invalid().size();
    kept += reader->take_invalid().size();
    // The skipped lines kept are the first kKeptInvalidLines, the others only counted.
    if (kept > cbm::kKeptInvalidLines || kept > reader->invalid_count()) __builtin_trap();
    if (reader->next_id() > reader->lines()) __builtin_trap();
  } catch (const std::invalid_argument&) {
    // a CSV header that is refused: a usage error, as the CLI reports it
  }
  std::fclose(in);
}

void read_price_table(std::string_view text) {
  try {
    const cbm::PriceTable t = cbm::parse_price_table(text, "fuzz.json");
    // A table it accepts has what its users rely on: a currency and a date, prices >= 0.
    if (t.currency.empty() || t.date.empty()) __builtin_trap();
    for (const auto& [model, p] : t.models) {
      if (!(p.input_per_million >= 0) || !(p.output_per_million >= 0)) __builtin_trap();
    }
    for (const auto& [engine, per_call] : t.search_per_call) {
      if (!(per_call >= 0)) __builtin_trap();
    }
  } catch (const std::invalid_argument& e) {
    // Refused: the message names the file.
    if (std::string_view(e.what()).find("'fuzz.json'") == std::string_view::npos) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto format : {cbm::InputFormat::text, cbm::InputFormat::jsonl, cbm::InputFormat::csv}) {
    read_rows(data, size, format);
  }
  rapidjson::Document doc;
  (void)cbm::parse_bounded(doc, text, cbm::JsonBounds{8, 1000});
  std::string repaired(text);
  cbm::repair_utf8(repaired);
  if (!cbm::is_valid_utf8(repaired)) __builtin_trap();  // a repair must leave valid UTF-8
  cbm::cap_text(repaired, 100);
  if (!cbm::is_valid_utf8(repaired)) __builtin_trap();  // a cut must not split a character
  read_price_table(text);
  return 0;
}
