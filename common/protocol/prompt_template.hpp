// Prompt templates with `{topic}` and `{sources}` placeholders, and `{name}` for a row's field
// (row_fields.hpp); `{{` and `}}` for literal braces.
//
// A template is checked in two steps, both before any request is sent: when it is built (an unbalanced
// brace or an empty `{}` is an error naming it), and when the run's input is known (check_fields: a
// placeholder that is neither {topic}, {sources} nor one of the input's fields is an error naming it,
// so a typo in a prompt file fails the run at its start).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"
#include "row_fields.hpp"

namespace cbm {

struct TemplateError {
  std::string message;
};

class PromptTemplate {
 public:
  static Result<PromptTemplate, TemplateError> parse(std::string_view text);

  // A field placeholder whose field `fields` lacks renders as nothing (check_fields and the row
  // readers make sure every row has the fields the templates use).
  std::string render(std::string_view topic, std::string_view sources, const Fields& fields = {}) const;
  bool uses_sources() const;
  // The field placeholders, in order of first use.
  std::vector<std::string> field_names() const;
  // The text the template was parsed from (to hand it to a worker process).
  const std::string& source() const { return source_; }

 private:
  enum class Piece { literal, topic, sources, field };
  struct Segment {
    Piece piece;
    std::string text;
  };
  std::vector<Segment> segments_;
  std::string source_;
};

// The four prompts of the pipeline: the search step (tool model) and the analysis step (chat model).
struct PromptSet {
  PromptTemplate search_system;
  PromptTemplate search_user;
  PromptTemplate analysis_system;
  PromptTemplate analysis_user;

  static PromptSet defaults();

  // A prompt file overrides any of the four with sections headed `[search.system]`, `[search.user]`,
  // `[analysis.system]`, `[analysis.user]`; each section's text runs to the next header, trimmed.
  static Result<PromptSet, TemplateError> from_file_text(std::string_view text);

  // The field placeholders of the four templates, each once.
  std::vector<std::string> field_names() const;
  // An error naming the first placeholder that is not a field in `known` (the input's fields: a CSV's
  // header, the first JSONL row's fields; none for text input), or nullopt.
  std::optional<TemplateError> check_fields(const std::vector<std::string>& known) const;
};

}  // namespace cbm
