// Secret scrubbing: a server or proxy may echo a credential back (an Authorization header quoted in an
// error page, a key in a 4xx body). Text that came from the wire passes through here before it reaches
// a log, a report or a trace, so the key never travels on.
#pragma once

#include <string>
#include <string_view>

namespace cbm {

// `text` with every occurrence of `secret` replaced by "[redacted]"; an empty secret changes nothing.
std::string scrub_secret(std::string text, std::string_view secret);

}  // namespace cbm
