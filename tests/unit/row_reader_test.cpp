#include "row_reader.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <stdexcept>

#include "duplicate_topics.hpp"
#include "result_codec.hpp"
#include "resume_index.hpp"
#include "topic_source.hpp"

using cbm::Fields;
using cbm::InputFormat;

namespace {

struct Read {
  std::vector<cbm::TopicLine> rows;
  std::vector<cbm::InvalidLine> invalid;
  std::vector<std::string> field_names;
};

// Everything a reader makes of `text` in `format`, the prompts using `required`.
Read read(const std::string& text, InputFormat format, std::vector<std::string> required = {}) {
  std::string buffer = text;
  std::FILE* f = ::fmemopen(buffer.data(), buffer.size(), "r");
  REQUIRE(f != nullptr);
  Read out;
  try {
    auto reader = cbm::RowReader::make(f, cbm::InputSpec{format, std::move(required)});
    out.field_names = reader->field_names();
    while (auto row = reader->next()) out.rows.push_back(std::move(*row));
    out.invalid = reader->take_invalid();
  } catch (...) {
    std::fclose(f);
    throw;
  }
  std::fclose(f);
  return out;
}

std::string csv_header_error(const std::string& text) {
  try {
    read(text, InputFormat::csv);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("the input format follows the extension unless given", "[rows]") {
  CHECK(cbm::input_format_of_path("rows.jsonl") == InputFormat::jsonl);
  CHECK(cbm::input_format_of_path("dir.v2/rows.NDJSON") == InputFormat::jsonl);
  CHECK(cbm::input_format_of_path("/tmp/rows.Csv") == InputFormat::csv);
  CHECK(cbm::input_format_of_path("topics.txt") == InputFormat::text);
  CHECK(cbm::input_format_of_path("data.csv/topics") == InputFormat::text);
  CHECK(cbm::input_format_from_string("jsonl") == InputFormat::jsonl);
  CHECK_FALSE(cbm::input_format_from_string("json").has_value());
}

TEST_CASE("a JSONL row keeps its fields in order: strings as given, numbers as written, booleans as words",
          "[rows][jsonl]") {
  const Read r = read(R"({"topic": " Tariffs ", "region": "EU", "price": 2.50, "year": 2024, "big": true})"
                      "\n",
                      InputFormat::jsonl);
  REQUIRE(r.invalid.empty());
  REQUIRE(r.rows.size() == 1);
  CHECK(r.rows[0].topic == "Tariffs");
  CHECK(r.rows[0].fields == Fields{{"region", "EU"}, {"price", "2.50"}, {"year", "2024"}, {"big", "true"}});
  CHECK(r.field_names == std::vector<std::string>{"region", "price", "year", "big"});
}

TEST_CASE("bad JSONL rows are skipped with their line numbers, the others are read", "[rows][jsonl]") {
  const std::string text =
      "\xEF\xBB\xBF{\"topic\": \"first\", \"region\": \"EU\"}\r\n"           // 1: a BOM and CRLF
      "\n"                                                                   // 2: blank, skipped silently
      "{\"topic\": \"nested\", \"region\": {\"a\": 1}}\n"                    // 3
      "{\"topic\": \"list\", \"region\": [1]}\n"                             // 4
      "{\"topic\": \"null\", \"region\": null}\n"                            // 5
      "{\"region\": \"no topic\"}\n"                                         // 6
      "{\"topic\": 42, \"region\": \"EU\"}\n"                                // 7
      "[\"topic\"]\n"                                                        // 8
      "{\"topic\": \"cut\"\n"                                                // 9
      "{\"topic\": \"missing region\"}\n"                                    // 10
      "{\"topic\": \"twice\", \"region\": \"a\", \"region\": \"b\"}\n"       // 11
      "{\"topic\": \"reserved\", \"region\": \"EU\", \"sources\": \"x\"}\n"  // 12
      "{\"topic\": \"\", \"region\": \"EU\"}\n"                              // 13
      "{\"topic\": \"bad \xC3\", \"region\": \"EU\"}\n"                      // 14
      "{\"topic\": \"last\", \"region\": \"US\"}";                           // 15: no final newline
  const Read r = read(text, InputFormat::jsonl, {"region"});
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].topic == "first");
  CHECK(r.rows[0].id == 0);
  CHECK(r.rows[1].topic == "last");
  CHECK(r.rows[1].id == 1);
  CHECK(r.rows[1].fields == Fields{{"region", "US"}});
  std::vector<std::string> invalid;
  for (const auto& bad : r.invalid) invalid.push_back(std::to_string(bad.line_number) + ": " + bad.reason);
  CHECK(invalid == std::vector<std::string>{
                       "3: field 'region' is an object (only strings, numbers and booleans)",
                       "4: field 'region' is an array (only strings, numbers and booleans)",
                       "5: field 'region' is null",
                       "6: has no 'topic' field",
                       "7: topic is not a string",
                       "8: not a JSON object",
                       "9: not valid JSON (offset 15)",
                       "10: has no field 'region' (the prompts use {region})",
                       "11: field 'region' given twice",
                       "12: a field is named 'sources', the placeholder of the search results",
                       "13: topic empty",
                       "14: not valid UTF-8",
                   });
}

TEST_CASE("a JSONL line over the cap is skipped whole and the next line is read", "[rows][jsonl]") {
  const std::string huge = R"({"topic": "huge", "notes": ")" + std::string(cbm::kMaxRowBytes, 'x') + "\"}\n";
  const Read r = read(huge + R"({"topic": "after"})" + "\n", InputFormat::jsonl);
  REQUIRE(r.invalid.size() == 1);
  CHECK(r.invalid[0].line_number == 1);
  CHECK(r.invalid[0].reason == "longer than " + std::to_string(cbm::kMaxRowBytes) + " bytes");
  REQUIRE(r.rows.size() == 1);
  CHECK(r.rows[0].topic == "after");
}

TEST_CASE("a JSONL input's fields are its first valid row's", "[rows][jsonl]") {
  const Read r =
      read("not json\n{\"topic\": \"a\", \"region\": \"EU\"}\n{\"topic\": \"b\", \"lang\": \"de\"}\n",
           InputFormat::jsonl);
  CHECK(r.field_names == std::vector<std::string>{"region"});
  CHECK(r.rows.size() == 2);  // nothing required: b's other field is its own business
  REQUIRE(r.invalid.size() == 1);
  CHECK(r.invalid[0].line_number == 1);
}

TEST_CASE("CSV fields may be quoted with commas, doubled quotes and line breaks", "[rows][csv]") {
  const std::string text =
      "\xEF\xBB\xBFtopic,region,note\r\n"
      "Tariffs,EU,plain\r\n"
      "\"Chips, memory\",\"US\",\"said \"\"no\"\"\"\r\n"
      "\r\n"
      "Grids,\"A\nB\",\"x\r\ny\"\r\n"
      " Spaced , kept ,\n"
      "Last,EU,no final newline";
  const Read r = read(text, InputFormat::csv);
  CHECK(r.invalid.empty());
  CHECK(r.field_names == std::vector<std::string>{"region", "note"});
  REQUIRE(r.rows.size() == 5);
  CHECK(r.rows[0].topic == "Tariffs");
  CHECK(r.rows[0].fields == Fields{{"region", "EU"}, {"note", "plain"}});
  CHECK(r.rows[1].topic == "Chips, memory");
  CHECK(r.rows[1].fields == Fields{{"region", "US"}, {"note", "said \"no\""}});
  CHECK(r.rows[2].topic == "Grids");
  CHECK(r.rows[2].fields == Fields{{"region", "A\nB"}, {"note", "x\r\ny"}});
  CHECK(r.rows[3].topic == "Spaced");  // the topic's rule trims; fields are kept as written
  CHECK(r.rows[3].fields == Fields{{"region", " kept "}, {"note", ""}});
  CHECK(r.rows[4].fields == Fields{{"region", "EU"}, {"note", "no final newline"}});
}

TEST_CASE("bad CSV rows are skipped with the line they start on", "[rows][csv]") {
  const std::string text =
      "topic,region\n"              // 1
      "ok,EU\n"                     // 2
      "\"multi\nline\",EU,extra\n"  // 3-4: three fields
      "short\n"                     // 5
      "\"closed\"x,EU\n"            // 6
      ",EU\n"                       // 7: empty topic
      "fine,US\n"                   // 8
      "\"never closed,EU\nmore\n";  // 9-10
  const Read r = read(text, InputFormat::csv);
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].topic == "ok");
  CHECK(r.rows[1].topic == "fine");
  CHECK(r.rows[1].id == 1);
  std::vector<std::string> invalid;
  for (const auto& bad : r.invalid) invalid.push_back(std::to_string(bad.line_number) + ": " + bad.reason);
  CHECK(invalid == std::vector<std::string>{
                       "3: has 3 fields, the header 2",
                       "5: has 1 fields, the header 2",
                       "6: has text after a closing quote (line 6)",
                       "7: topic empty",
                       "9: has a quoted field that is never closed",
                   });
}

TEST_CASE("a CSV row over the cap is skipped and the next row is read", "[rows][csv]") {
  const std::string text = "topic,notes\nhuge," + std::string(cbm::kMaxRowBytes, 'x') + "\nafter,n\n";
  const Read r = read(text, InputFormat::csv);
  REQUIRE(r.invalid.size() == 1);
  CHECK(r.invalid[0].line_number == 2);
  CHECK(r.invalid[0].reason == "longer than " + std::to_string(cbm::kMaxRowBytes) + " bytes");
  REQUIRE(r.rows.size() == 1);
  CHECK(r.rows[0].topic == "after");
}

TEST_CASE("a CSV without a usable header is refused before any row is read", "[rows][csv]") {
  CHECK(csv_header_error("region,year\nEU,2024\n") ==
        "the CSV header has no 'topic' column (columns: region, year)");
  CHECK(csv_header_error("") == "the CSV input has no header row");
  CHECK(csv_header_error("topic,region,region\n") == "the CSV header names column 'region' twice");
  CHECK(csv_header_error("topic,,region\n") == "the CSV header's column 2 has no name");
  CHECK(csv_header_error("topic,sources\n") ==
        "the CSV header: a field is named 'sources', the placeholder of the search results");
  CHECK(csv_header_error("\n\ntopic\n") == "no error");  // blank lines before the header are skipped
}

TEST_CASE("text input is read as it always was: no fields, '#' comments", "[rows]") {
  const Read r = read("# comment\n  alpha  \n{\"topic\": \"b\"}\n", InputFormat::text, {"region"});
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].topic == "alpha");
  CHECK(r.rows[0].fields.empty());
  CHECK(r.rows[1].topic == "{\"topic\": \"b\"}");
  CHECK(r.field_names.empty());
}

TEST_CASE("rows with one topic and different fields are different tasks, field order does not matter",
          "[rows]") {
  const Fields eu{{"region", "EU"}, {"year", "2024"}};
  const Fields eu_reordered{{"year", "2024"}, {"region", "EU"}};
  const Fields us{{"region", "US"}, {"year", "2024"}};
  CHECK(cbm::task_key("Tariffs", eu) == cbm::task_key("Tariffs", eu_reordered));
  CHECK(cbm::task_key("Tariffs", eu) != cbm::task_key("Tariffs", us));
  CHECK(cbm::task_hash("Tariffs", eu) != cbm::task_hash("Tariffs", us));
  // Text input keeps the key it always had, so journals written before rows still resume.
  CHECK(cbm::task_key("Tariffs", {}) == "Tariffs");
  CHECK(cbm::task_hash("Tariffs", {}) == cbm::topic_hash("Tariffs"));
}

TEST_CASE("resume tells a row from the same topic with other fields", "[rows][resume]") {
  cbm::ResumeIndex index;
  cbm::TaskResult restored;
  restored.round = 1;
  restored.id = 0;
  restored.topic = "Tariffs";
  restored.fields = {{"region", "EU"}};
  index.add(restored);
  CHECK(index.matches(1, 0, cbm::task_hash("Tariffs", {{"region", "EU"}})));
  CHECK_FALSE(index.matches(1, 0, cbm::task_hash("Tariffs", {{"region", "US"}})));
  CHECK_FALSE(index.matches(1, 0, cbm::topic_hash("Tariffs")));
}

TEST_CASE("a row's fields travel to the worker in the task and back in the record", "[rows][codec]") {
  cbm::Task task{3, 2, "Tariffs", 1, {{"region", "EU"}, {"note", "say \"hi\"\n"}}};
  auto decoded = cbm::decode_task(cbm::encode_task(task));
  REQUIRE(decoded.ok());
  CHECK(decoded->fields == task.fields);

  cbm::TaskResult record;
  record.topic = "Tariffs";
  record.fields = task.fields;
  const std::string json = cbm::encode_task_result(record);
  CHECK_THAT(json, Catch::Contains(R"("fields":{"region":"EU","note":"say \"hi\"\n"})"));
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  auto back = cbm::decode_task_result(doc);
  REQUIRE(back.ok());
  CHECK(back->fields == task.fields);

  record.fields.clear();  // text input: no `fields` at all, as before rows existed
  CHECK_THAT(cbm::encode_task_result(record), !Catch::Contains("fields"));
}
