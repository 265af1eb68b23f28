#include "wire_text.hpp"

#include <catch2/catch.hpp>

#include "bounded_json.hpp"

TEST_CASE("invalid UTF-8 becomes U+FFFD, one per invalid run, valid text untouched", "[wire_text]") {
  std::string valid = "plain, \xC3\xA9t\xC3\xA9, \xE4\xB8\xAD\xE6\x96\x87, \xF0\x9F\x98\x80";
  const std::string before = valid;
  CHECK(cbm::repair_utf8(valid) == 0);
  CHECK(valid == before);

  std::string broken = "a\xC3\x28" "b\xFF\xFE" "c\xE2\x82";  // a lone lead, two bad bytes, a cut character
  CHECK(cbm::repair_utf8(broken) == 3);
  CHECK(broken == "a\xEF\xBF\xBD(b\xEF\xBF\xBD" "c\xEF\xBF\xBD");
  std::string overlong = "\xC0\xAF and \xED\xA0\x80";  // an overlong '/' and a surrogate
  CHECK(cbm::repair_utf8(overlong) == 2);
  CHECK(overlong == "\xEF\xBF\xBD and \xEF\xBF\xBD");
}

TEST_CASE("a capped text is cut on a character boundary and says how much was cut", "[wire_text]") {
  std::string short_text = "short";
  cbm::cap_text(short_text, 10);
  CHECK(short_text == "short");
  std::string accents = "\xC3\xA9\xC3\xA9\xC3\xA9";  // three 2-byte characters
  cbm::cap_text(accents, 3);  // byte 3 is inside the second character: cut before it
  CHECK(accents == "\xC3\xA9 [... 4 bytes cut]");
  std::string huge(5u << 20, 'E');
  cbm::cap_text(huge, cbm::kMaxErrorMessageBytes);
  CHECK(huge.size() < cbm::kMaxErrorMessageBytes + 40);
  CHECK_THAT(huge, Catch::EndsWith(" [... " + std::to_string((5u << 20) - cbm::kMaxErrorMessageBytes) + " bytes cut]"));
}

TEST_CASE("wire text loses an echoed key", "[wire_text][secrets]") {
  std::string text = "you sent sk-SECRET-1 \xFF twice: sk-SECRET-1";
  cbm::clean_wire_text(text, "sk-SECRET-1");
  CHECK(text.find("sk-SECRET-1") == std::string::npos);
  CHECK_THAT(text, Catch::Contains("[redacted]") && Catch::Contains("\xEF\xBF\xBD"));
}

TEST_CASE("bounded JSON refuses deep nesting and too many values before building a document", "[wire_text][json]") {
  rapidjson::Document doc;
  const cbm::JsonBounds bounds{4, 10};
  CHECK_FALSE(cbm::parse_bounded(doc, R"({"a":[1,2,{"b":3}]})", bounds));
  CHECK(doc["a"][2]["b"].GetInt() == 3);
  CHECK(cbm::parse_bounded(doc, std::string(1 << 20, '['), bounds) == std::string("nested deeper than 4 levels"));
  CHECK(cbm::parse_bounded(doc, "[1,2,3,4,5,6,7,8,9,10,11]", bounds) == std::string("more than 10 values"));
  const auto syntax = cbm::parse_bounded(doc, R"({"a":)", bounds);
  REQUIRE(syntax);
  CHECK_THAT(*syntax, Catch::StartsWith("invalid JSON at byte 5"));
}
