#include "price_table.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "bounded_json.hpp"
#include "json_reader.hpp"

namespace cbm {
namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& what) {
  std::string text = "price file '";
  text += origin;
  text += "': ";
  text += what;
  throw std::invalid_argument(text);
}

double price_at(const rapidjson::Value& v, const std::string& path, const std::string& origin) {
  if (!v.IsNumber()) bad(origin, path + ": expected a number >= 0, got " + std::string(json_type_name(v)));
  const double d = v.GetDouble();
  if (!std::isfinite(d) || d < 0) bad(origin, path + ": expected a number >= 0, got " + std::to_string(d));
  return d;
}

std::string text_at(const rapidjson::Value& obj, const char* key, bool required, const std::string& origin) {
  const auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) {
    if (required) bad(origin, std::string(key) + ": missing");
    return {};
  }
  if (!it->value.IsString()) {
    bad(origin, std::string(key) + ": expected a string, got " + std::string(json_type_name(it->value)));
  }
  std::string s(it->value.GetString(), it->value.GetStringLength());
  if (required && s.empty()) bad(origin, std::string(key) + ": empty");
  return s;
}

}  // namespace

const ModelPrice* PriceTable::model(std::string_view name) const {
  const auto it = models.find(name);
  return it == models.end() ? nullptr : &it->second;
}

std::optional<double> PriceTable::search_call(std::string_view engine) const {
  const auto it = search_per_call.find(engine);
  if (it == search_per_call.end()) return std::nullopt;
  return it->second;
}

PriceTable parse_price_table(std::string_view json, const std::string& origin) {
  rapidjson::Document doc;
  // A price file is a few dozen values: a hostile one is refused before it costs a deep stack.
  if (auto shape = json_shape_problem(json, JsonBounds{16, 100000})) bad(origin, "refused: " + *shape);
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError()) {
    bad(origin, std::string("not JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()) + " at byte " +
                    std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) bad(origin, "expected a JSON object, got " + std::string(json_type_name(doc)));
  PriceTable t;
  t.origin = origin;
  t.currency = text_at(doc, "currency", true, origin);
  t.date = text_at(doc, "date", true, origin);
  t.source = text_at(doc, "source", false, origin);
  text_at(doc, "note", false, origin);
  for (const auto& m : doc.GetObject()) {
    const std::string key(m.name.GetString(), m.name.GetStringLength());
    if (key != "currency" && key != "date" && key != "source" && key != "note" && key != "models" &&
        key != "search_per_call") {
      bad(origin, "unknown member '" + key + "' (known: currency, date, source, note, models, search_per_call)");
    }
  }
  const auto models = doc.FindMember("models");
  if (models == doc.MemberEnd()) bad(origin, "models: missing");
  if (!models->value.IsObject()) bad(origin, "models: expected an object, got " + std::string(json_type_name(models->value)));
  for (const auto& m : models->value.GetObject()) {
    const std::string name(m.name.GetString(), m.name.GetStringLength());
    const std::string path = "models." + name;
    if (name.empty()) bad(origin, "models: an empty model name");
    if (!m.value.IsObject()) bad(origin, path + ": expected an object, got " + std::string(json_type_name(m.value)));
    ModelPrice p;
    bool have_in = false;
    bool have_out = false;
    for (const auto& f : m.value.GetObject()) {
      const std::string field(f.name.GetString(), f.name.GetStringLength());
      if (field == "input_per_million") {
        p.input_per_million = price_at(f.value, path + ".input_per_million", origin);
        have_in = true;
      } else if (field == "output_per_million") {
        p.output_per_million = price_at(f.value, path + ".output_per_million", origin);
        have_out = true;
      } else {
        bad(origin, path + ": unknown member '" + field + "' (known: input_per_million, output_per_million)");
      }
    }
    if (!have_in) bad(origin, path + ".input_per_million: missing");
    if (!have_out) bad(origin, path + ".output_per_million: missing");
    t.models[name] = p;
  }
  const auto search = doc.FindMember("search_per_call");
  if (search != doc.MemberEnd()) {
    if (!search->value.IsObject()) {
      bad(origin, "search_per_call: expected an object, got " + std::string(json_type_name(search->value)));
    }
    for (const auto& m : search->value.GetObject()) {
      const std::string engine(m.name.GetString(), m.name.GetStringLength());
      t.search_per_call[engine] = price_at(m.value, "search_per_call." + engine, origin);
    }
  }
  return t;
}

PriceTable load_price_file(const std::string& path) {
  constexpr std::streamsize kMaxBytes = 1 << 20;  // a real one is a few KiB
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) bad(path, "is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) bad(path, "cannot be read");
  std::string text(static_cast<std::size_t>(kMaxBytes) + 1, '\0');
  in.read(text.data(), kMaxBytes + 1);
  if (in.bad()) bad(path, "cannot be read");
  if (in.gcount() > kMaxBytes) bad(path, "is larger than 1 MiB: not a price file");
  text.resize(static_cast<std::size_t>(in.gcount()));
  return parse_price_table(text, path);
}

const PriceTable& bundled_price_table() {
  static const PriceTable table = parse_price_table(bundled_price_json(), "bundled");
  return table;
}

std::string format_money(double amount, const std::string& currency) {
  char buf[64];
  std::snprintf(buf, sizeof buf, amount != 0 && amount < 0.01 ? "%.6f" : "%.4f", amount);
  std::string out = currency;
  out += ' ';
  out += buf;
  return out;
}

}  // namespace cbm
