#include "row_fields.hpp"

#include <algorithm>

#include "fnv1a.hpp"

namespace cbm {

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
