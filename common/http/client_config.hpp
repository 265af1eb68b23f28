// Settings of the BigModel client that the CLI (and an embedding program) choose.
#pragma once

#include <chrono>
#include <string>

#include "http_client.hpp"
#include "request_settings.hpp"

namespace cbm {

inline constexpr const char* kDefaultBaseUrl = "https://open.bigmodel.cn/api/paas/v4";

struct ClientConfig {
  std::string base_url = kDefaultBaseUrl;  // `{base_url}/chat/completions`, `{base_url}/web_search`
  std::string api_key;                     // secret: never logged, never in argv of a child
  bool stream = false;                     // ask for SSE and assemble the stream
  ApiFlavor flavor = ApiFlavor::bigmodel;  // which request fields may be sent
  std::string accept_language;             // sent as Accept-Language; empty: not sent
  HttpOptions http;
};

}  // namespace cbm
