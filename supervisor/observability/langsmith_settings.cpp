#include "langsmith_settings.hpp"

#include <cmath>
#include <cstdlib>
#include <strings.h>

#include "api_key.hpp"

namespace cbm {
namespace {

std::optional<std::string> setting(const EnvLookup& env, const std::string& name, std::string* from = nullptr) {
  for (const char* prefix : {"LANGSMITH_", "LANGCHAIN_"}) {
    auto v = env(prefix + name);
    if (v && !v->empty()) {
      if (from != nullptr) *from = prefix + name;
      return v;
    }
  }
  return std::nullopt;
}

// The SDK's test for its HIDE_* switches: "true" in any case.
bool switched_on(const EnvLookup& env, const std::string& name) {
  auto v = setting(env, name);
  return v && ::strcasecmp(v->c_str(), "true") == 0;
}

std::optional<double> fraction(const std::string& text) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(v) || v < 0.0 || v > 1.0) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<std::optional<LangSmithSettings>, std::string> langsmith_settings(const EnvLookup& env,
                                                                         bool allow_insecure_http) {
  auto tracing = setting(env, "TRACING_V2");
  if (!tracing) tracing = setting(env, "TRACING");
  if (tracing != "true") return std::optional<LangSmithSettings>();

  LangSmithSettings s;
  std::string endpoint_var = "LANGSMITH_ENDPOINT";
  if (auto endpoint = setting(env, "ENDPOINT", &endpoint_var)) s.endpoint = std::move(*endpoint);
  while (s.endpoint.ends_with('/')) s.endpoint.pop_back();
  if (!is_http_url(s.endpoint)) {
    return Err{endpoint_var + ": '" + s.endpoint + "' is not an http:// or https:// URL"};
  }
  if (auto project = setting(env, "PROJECT")) s.project = std::move(*project);
  if (auto key = setting(env, "API_KEY")) s.api_key = std::move(*key);
  if (s.api_key.find_first_of("\r\n") != std::string::npos) {
    return Err{std::string("the LangSmith API key contains a line break (check LANGSMITH_API_KEY)")};
  }
  std::string workspace_var = "LANGSMITH_WORKSPACE_ID";
  if (auto workspace = setting(env, "WORKSPACE_ID", &workspace_var)) s.workspace_id = std::move(*workspace);
  if (s.workspace_id.find_first_of("\r\n") != std::string::npos) {
    return Err{workspace_var + " contains a line break"};
  }
  s.hide_inputs = switched_on(env, "HIDE_INPUTS");
  s.hide_outputs = switched_on(env, "HIDE_OUTPUTS");
  s.hide_metadata = switched_on(env, "HIDE_METADATA");
  std::string rate_var = "LANGSMITH_TRACING_SAMPLING_RATE";
  if (auto rate = setting(env, "TRACING_SAMPLING_RATE", &rate_var)) {
    auto v = fraction(*rate);
    if (!v) return Err{rate_var + ": '" + *rate + "' is not a number from 0 to 1"};
    s.sampling_rate = *v;
  }

  // A loopback endpoint (a local collector, the test simulator) may need no key; a remote one does.
  const bool loopback = s.endpoint.starts_with("http://") && key_may_travel_to(s.endpoint);
  if (s.api_key.empty() && !loopback) {
    return Err{"LANGSMITH_TRACING=true but no LANGSMITH_API_KEY (or LANGCHAIN_API_KEY) for " + endpoint_var +
               " '" + s.endpoint + "': set the key, or unset LANGSMITH_TRACING"};
  }
  if (!allow_insecure_http && !key_may_travel_to(s.endpoint)) {
    return Err{endpoint_var + ": '" + s.endpoint +
               "' is plain http to a non-loopback host; the LangSmith API key would travel unencrypted "
               "(pass --allow-insecure-http to accept that)"};
  }
  return std::optional<LangSmithSettings>(std::move(s));
}

}  // namespace cbm
