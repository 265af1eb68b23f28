// Serialises a ChatRequest into the platform's JSON body (bigmodel-api.md, "Request").
#pragma once

#include <string>

#include "chat_types.hpp"

namespace cbm {

std::string build_request_body(const ChatRequest& request);

}  // namespace cbm
