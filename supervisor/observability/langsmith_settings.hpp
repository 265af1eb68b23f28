// LangSmithSettings: whether runs are traced to LangSmith, and where, read from the environment the
// way LangSmith's own SDK reads it, so one set of variables serves the Python tool and this one.
//
// Each setting X is LANGSMITH_X, else LANGCHAIN_X (an empty value counts as unset). Tracing is on when
// TRACING_V2, else TRACING, is exactly "true"; then API_KEY, ENDPOINT (default
// https://api.smith.langchain.com), PROJECT (default "default"), WORKSPACE_ID (sent as X-Tenant-Id:
// org-scoped keys need it), HIDE_INPUTS / HIDE_OUTPUTS / HIDE_METADATA ("true", any case: that part
// of every run is sent as {}) and TRACING_SAMPLING_RATE (in [0,1], default 1: the share of traces sent,
// drawn once per trace) apply.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "result.hpp"

namespace cbm {

inline constexpr const char* kDefaultLangSmithEndpoint = "https://api.smith.langchain.com";

struct LangSmithSettings {
  std::string endpoint = kDefaultLangSmithEndpoint;  // no trailing slash; runs go to {endpoint}/runs/batch
  std::string api_key;                               // secret; empty only for a loopback endpoint
  std::string project = "default";                   // the runs' session_name
  std::string workspace_id;                          // X-Tenant-Id; empty: not sent
  bool hide_inputs = false;                          // send every run's inputs as {}
  bool hide_outputs = false;                         // ...its outputs
  bool hide_metadata = false;                        // ...its extra.metadata
  double sampling_rate = 1.0;                        // share of traces (task attempts) sent
};

// The value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_environment();

// nullopt when tracing is off. An error (a message naming the variable and its value, never the key)
// when tracing is on but cannot work as configured: no API key for a remote endpoint, an endpoint that
// is not an http(s) URL, or plain http to a non-loopback host without `allow_insecure_http` (the key
// would travel unencrypted, the rule --base-url follows).
Result<std::optional<LangSmithSettings>, std::string> langsmith_settings(const EnvLookup& env,
                                                                         bool allow_insecure_http);

}  // namespace cbm
