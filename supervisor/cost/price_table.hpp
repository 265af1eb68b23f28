// PriceTable: what the platform charges, per model (input and output tokens, per million) and per web
// search call (by search engine), in one currency. The bundled one (default_prices.json, compiled in)
// is an estimate with its date and source; --price-file replaces it. A model the table does not list
// has no known price: costs over it are reported as unknown, never guessed. docs/cost.md.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace cbm {

struct ModelPrice {
  double input_per_million = 0;
  double output_per_million = 0;
};

struct PriceTable {
  std::string currency;
  std::string date;    // when the prices were taken
  std::string source;  // where from ("" for a user's file that names none)
  std::string origin;  // "bundled" or the --price-file path
  std::map<std::string, ModelPrice, std::less<>> models;
  std::map<std::string, double, std::less<>> search_per_call;  // by search engine

  const ModelPrice* model(std::string_view name) const;
  std::optional<double> search_call(std::string_view engine) const;
};

// Parses a price table's JSON. `origin` names it in errors: std::invalid_argument
// "price file 'PATH': models.glm-5.input_per_million: expected a number >= 0, got string".
PriceTable parse_price_table(std::string_view json, const std::string& origin);
// Reads and parses a --price-file (errors name the file).
PriceTable load_price_file(const std::string& path);
// The compiled-in table (default_prices.json).
const PriceTable& bundled_price_table();
std::string_view bundled_price_json();

// "CNY 0.53" with enough digits for small sums.
std::string format_money(double amount, const std::string& currency);

}  // namespace cbm
