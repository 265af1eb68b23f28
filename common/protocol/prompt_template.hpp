// Prompt templates with `{topic}` and `{sources}` placeholders (`{{` and `}}` for literal braces).
//
// A template is checked when it is built: an unknown placeholder or an unbalanced brace is an error
// naming it, so a typo in a prompt file fails the run before any request is sent.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace cbm {

struct TemplateError {
  std::string message;
};

class PromptTemplate {
 public:
  static Result<PromptTemplate, TemplateError> parse(std::string_view text);

  std::string render(std::string_view topic, std::string_view sources) const;
  bool uses_sources() const;
  // The text the template was parsed from (to hand it to a worker process).
  const std::string& source() const { return source_; }

 private:
  enum class Piece { literal, topic, sources };
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
};

}  // namespace cbm
