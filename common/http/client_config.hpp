// Settings of the BigModel client that the CLI (and an embedding program) choose.
#pragma once

#include <chrono>
#include <string>

#include "http_client.hpp"

namespace cbm {

inline constexpr const char* kDefaultBaseUrl = "https://open.bigmodel.cn/api/paas/v4";

struct ClientConfig {
  std::string base_url = kDefaultBaseUrl;  // `{base_url}/chat/completions`
  std::string api_key;                     // secret: never logged, never in argv of a child
  bool stream = false;                     // ask for SSE and assemble the stream
  HttpOptions http;
};

}  // namespace cbm
