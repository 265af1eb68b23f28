// Serialises a ChatRequest into the platform's JSON body (docs/protocol.md, "Chat completions request").
#pragma once

#include <string>

#include "chat_types.hpp"

namespace cbm {

std::string build_request_body(const ChatRequest& request);

}  // namespace cbm
