#include "row_fields.hpp"

#include <algorithm>

#include "fnv1a.hpp"
#include "wire_text.hpp"

namespace cbm {

std::string field_name_problem(std::string_view name) {
  if (name == "topic") return "a field is named 'topic' (the topic is the row's own)";
  if (name == "sources") return "a field is named 'sources', the placeholder of the search results";
  if (name.find('\0') != std::string_view::npos) return "a field name contains a NUL byte";
  if (!is_valid_utf8(name)) return "a field name is not valid UTF-8";
  return {};
}

std::string field_value_problem(std::string_view name, std::string_view value) {
  if (value.find('\0') != std::string_view::npos) return "field '" + std::string(name) + "' contains a NUL byte";
  if (!is_valid_utf8(value)) return "field '" + std::string(name) + "' is not valid UTF-8";
  return {};
}

const std::string* find_field(const Fields& fields, std::string_view name) {
  for (const auto& f : fields) {
    if (f.name == name) return &f.value;
  }
  return nullptr;
}

std::string task_key(std::string_view topic, const Fields& fields) {
  std::string key(topic);
  if (fields.empty()) return key;
  std::vector<const Field*> sorted;
  sorted.reserve(fields.size());
  for (const auto& f : fields) sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(), [](const Field* a, const Field* b) { return a->name < b->name; });
  for (const Field* f : sorted) {
    key += '\0';
    key += f->name;
    key += '\0';
    key += f->value;
  }
  return key;
}

std::uint64_t task_hash(std::string_view topic, const Fields& fields) {
  return fields.empty() ? fnv1a64(topic) : fnv1a64(task_key(topic, fields));
}

}  // namespace cbm
