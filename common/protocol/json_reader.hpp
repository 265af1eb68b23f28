// JsonReader: typed access to the fields of one JSON object that remembers the first type error with
// its path ("choices[0].message.content: expected string, got number"). Absent and null fields leave
// the output untouched, so optional fields need no special casing.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace cbm {

std::string_view json_type_name(const rapidjson::Value& v);

class JsonReader {
 public:
  // `first_error` is shared by the readers of one document; the first failure wins.
  JsonReader(const rapidjson::Value& obj, std::string path, std::string& first_error);

  void string(const char* name, std::string& out);
  void integer(const char* name, std::int64_t& out);
  void integer(const char* name, int& out);
  void number(const char* name, double& out);
  void boolean(const char* name, bool& out);
  // The member if it has the type; nullptr when absent, null or of another type (recorded).
  const rapidjson::Value* object(const char* name);
  const rapidjson::Value* array(const char* name);

  // Records `what` at `name` unless an error is already recorded.
  void fail(const char* name, std::string_view what);
  std::string child_path(const char* name) const;
  std::string element_path(const char* array_name, std::size_t i) const;

 private:
  const rapidjson::Value* find(const char* name) const;
  const rapidjson::Value* typed(const char* name, const char* expected, bool (rapidjson::Value::*is)() const);
  void type_error(const char* name, const char* expected, const rapidjson::Value& got);

  const rapidjson::Value& obj_;
  std::string path_;
  std::string& error_;
};

}  // namespace cbm
