#include "json_reader.hpp"

#include <limits>

namespace cbm {

using rapidjson::Value;

std::string_view json_type_name(const Value& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "boolean";
    case rapidjson::kObjectType:
      return "object";
    case rapidjson::kArrayType:
      return "array";
    case rapidjson::kStringType:
      return "string";
    case rapidjson::kNumberType:
      return "number";
  }
  return "unknown";
}

JsonReader::JsonReader(const Value& obj, std::string path, std::string& first_error)
    : obj_(obj), path_(std::move(path)), error_(first_error) {}

const Value* JsonReader::find(const char* name) const {
  auto it = obj_.FindMember(name);
  if (it == obj_.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

void JsonReader::string(const char* name, std::string& out) {
  if (const Value* v = typed(name, "string", &Value::IsString)) out.assign(v->GetString(), v->GetStringLength());
}

void JsonReader::integer(const char* name, std::int64_t& out) {
  if (const Value* v = typed(name, "integer", &Value::IsInt64)) out = v->GetInt64();
}

void JsonReader::integer(const char* name, int& out) {
  if (const Value* v = typed(name, "integer", &Value::IsInt)) out = v->GetInt();
}

void JsonReader::number(const char* name, double& out) {
  if (const Value* v = typed(name, "number", &Value::IsNumber)) out = v->GetDouble();
}

void JsonReader::boolean(const char* name, bool& out) {
  if (const Value* v = typed(name, "boolean", &Value::IsBool)) out = v->GetBool();
}

const Value* JsonReader::object(const char* name) { return typed(name, "object", &Value::IsObject); }
const Value* JsonReader::array(const char* name) { return typed(name, "array", &Value::IsArray); }

const Value* JsonReader::typed(const char* name, const char* expected, bool (Value::*is)() const) {
  const Value* v = find(name);
  if (v == nullptr) return nullptr;
  if (!(v->*is)()) {
    type_error(name, expected, *v);
    return nullptr;
  }
  return v;
}

void JsonReader::type_error(const char* name, const char* expected, const Value& got) {
  fail(name, std::string("expected ") + expected + ", got " + std::string(json_type_name(got)));
}

void JsonReader::fail(const char* name, std::string_view what) {
  if (error_.empty()) error_ = child_path(name) + ": " + std::string(what);
}

std::string JsonReader::child_path(const char* name) const {
  return path_.empty() ? std::string(name) : path_ + "." + name;
}

std::string JsonReader::element_path(const char* array_name, std::size_t i) const {
  return child_path(array_name) + "[" + std::to_string(i) + "]";
}

}  // namespace cbm
