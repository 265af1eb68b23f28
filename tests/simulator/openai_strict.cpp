#include "openai_strict.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>

namespace simulator {
namespace {

// The request arguments of OpenAI's POST /v1/chat/completions.
constexpr std::array<std::string_view, 34> kKnownFields{"audio",
                                                        "frequency_penalty",
                                                        "function_call",
                                                        "functions",
                                                        "logit_bias",
                                                        "logprobs",
                                                        "max_completion_tokens",
                                                        "max_tokens",
                                                        "messages",
                                                        "metadata",
                                                        "modalities",
                                                        "model",
                                                        "n",
                                                        "parallel_tool_calls",
                                                        "prediction",
                                                        "presence_penalty",
                                                        "prompt_cache_key",
                                                        "reasoning_effort",
                                                        "response_format",
                                                        "safety_identifier",
                                                        "seed",
                                                        "service_tier",
                                                        "stop",
                                                        "store",
                                                        "stream",
                                                        "stream_options",
                                                        "temperature",
                                                        "tool_choice",
                                                        "tools",
                                                        "top_logprobs",
                                                        "top_p",
                                                        "user",
                                                        "verbosity",
                                                        "web_search_options"};

std::string error_body(std::string_view message, const char* param, const char* code) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("error");
  w.StartObject();
  w.Key("message");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  w.Key("type");
  w.String("invalid_request_error");
  w.Key("param");
  param == nullptr ? w.Null() : w.String(param);
  w.Key("code");
  code == nullptr ? w.Null() : w.String(code);
  w.EndObject();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace

std::optional<OpenAiRejection> openai_rejection(std::string_view body) {
  rapidjson::Document document;
  document.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  // Malformed bodies are left to the ordinary checks.
  if (document.HasParseError() || !document.IsObject()) return std::nullopt;
  for (const auto& member : document.GetObject()) {
    const std::string_view name(member.name.GetString(), member.name.GetStringLength());
    if (std::find(kKnownFields.begin(), kKnownFields.end(), name) == kKnownFields.end()) {
      std::string message = "Unrecognized request argument supplied: ";
      message += name;
      return OpenAiRejection{400, error_body(message, nullptr, nullptr)};
    }
  }
  const auto tools = document.FindMember("tools");
  if (tools != document.MemberEnd() && tools->value.IsArray()) {
    for (rapidjson::SizeType i = 0; i < tools->value.Size(); ++i) {
      const auto& tool = tools->value[i];
      if (!tool.IsObject()) continue;
      const auto type = tool.FindMember("type");
      if (type == tool.MemberEnd() || !type->value.IsString()) continue;
      const std::string_view t(type->value.GetString(), type->value.GetStringLength());
      if (t == "function" || t == "custom") continue;
      std::string message = "Invalid value: '";
      message += t;
      message += "'. Supported values are: 'function' and 'custom'.";
      std::string param = "tools[";
      param += std::to_string(i);
      param += "].type";
      return OpenAiRejection{400, error_body(message, param.c_str(), "invalid_value")};
    }
  }
  return std::nullopt;
}

}  // namespace simulator
