// A row's fields: the named values beside a topic in a JSONL or CSV input (`{"topic": "...",
// "region": "EU"}`), each a `{name}` placeholder in the prompt templates and kept in the task's record
// (`fields`). Values are text, as they render into a prompt (README.md, "Row inputs"). Text
// input has none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cbm {

struct Field {
  std::string name;
  std::string value;

  bool operator==(const Field&) const = default;
};

// In the input's order (the CSV header's, the JSONL object's). Names are unique, never "topic" or
// "sources", and neither names nor values hold a NUL byte.
using Fields = std::vector<Field>;

// Why `name` cannot name a field ("topic" and "sources" are the prompts' own placeholders; no NUL
// byte; UTF-8), or "" when it can. `value_problem`: the same for a field's value.
std::string field_name_problem(std::string_view name);
std::string field_value_problem(std::string_view name, std::string_view value);

// The value of field `name`, or nullptr.
const std::string* find_field(const Fields& fields, std::string_view name);

// One row of the input: a topic and its fields.
struct TopicRow {
  std::string topic;
  Fields fields;
};

// What makes two tasks the same task (duplicate detection, --resume's check of the input): the topic
// alone when there are no fields, so text input keeps the key it always had; else the topic, then each
// field in name order as "\0name\0value" (NUL cannot occur in either, so the key is unambiguous and
// does not depend on the order the input gave the fields in).
std::string task_key(std::string_view topic, const Fields& fields);

// A stable 64-bit hash of task_key (FNV-1a).
std::uint64_t task_hash(std::string_view topic, const Fields& fields);

}  // namespace cbm
