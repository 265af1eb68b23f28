#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace simulator {

// How api.openai.com refuses a chat request that it does not understand, for --strict-openai: the
// first top-level field it does not know, or a tool that is not a function, answered as it answers
// them (HTTP 400, its own error shape). nullopt: the request would pass.
struct OpenAiRejection {
  unsigned status = 400;
  std::string body;
};
std::optional<OpenAiRejection> openai_rejection(std::string_view body);

}  // namespace simulator
