#include "bounded_json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace cbm {
namespace {

// Counts as it reads; returning false stops the reader at once.
class ShapeCheck : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, ShapeCheck> {
 public:
  explicit ShapeCheck(JsonBounds bounds) : bounds_(bounds) {}

  bool Default() { return value(); }
  bool StartObject() { return open(); }
  bool StartArray() { return open(); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool EndArray(rapidjson::SizeType) { return close(); }

  const std::optional<std::string>& exceeded() const { return exceeded_; }

 private:
  bool value() {
    if (++values_ <= bounds_.max_values) return true;
    exceeded_ = "more than " + std::to_string(bounds_.max_values) + " values";
    return false;
  }
  bool open() {
    if (!value()) return false;
    if (++depth_ <= bounds_.max_depth) return true;
    exceeded_ = "nested deeper than " + std::to_string(bounds_.max_depth) + " levels";
    return false;
  }
  bool close() {
    --depth_;
    return true;
  }

  JsonBounds bounds_;
  std::size_t depth_ = 0;
  std::size_t values_ = 0;
  std::optional<std::string> exceeded_;
};

std::string syntax_error(rapidjson::ParseErrorCode code, std::size_t offset) {
  return "invalid JSON at byte " + std::to_string(offset) + ": " + rapidjson::GetParseError_En(code);
}

}  // namespace

std::optional<std::string> json_shape_problem(std::string_view text, JsonBounds bounds) {
  ShapeCheck check(bounds);
  rapidjson::Reader reader;
  rapidjson::MemoryStream stream(text.data(), text.size());
  reader.Parse<rapidjson::kParseIterativeFlag>(stream, check);
  return check.exceeded();
}

std::optional<std::string> parse_bounded(rapidjson::Document& doc, std::string_view text, JsonBounds bounds) {
  if (auto problem = json_shape_problem(text, bounds)) return problem;
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  if (doc.HasParseError()) return syntax_error(doc.GetParseError(), doc.GetErrorOffset());
  return std::nullopt;
}

}  // namespace cbm
