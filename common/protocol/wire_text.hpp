// Text that came from a server, made fit to keep: every string of an answer passes through here in
// BigModelProtocol::interpret before it reaches a record, the journal, the report, a log or a trace.
//
// - Invalid UTF-8 becomes U+FFFD (one per maximal invalid sequence), so every report and journal is
//   valid UTF-8 JSON that any reader (Python's json) loads.
// - The API key, if echoed back anywhere (an error page, an answer), becomes "[redacted]".
// - An error message is capped at kMaxErrorMessageBytes, cut on a character boundary with a marker
//   saying how much was left out: a 5 MB error page costs a record 4 KiB, not 5 MB.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cbm {

inline constexpr std::size_t kMaxErrorMessageBytes = 4096;

// Whether `text` is UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Replaces each invalid UTF-8 sequence of `text` with U+FFFD; returns how many were replaced.
std::size_t repair_utf8(std::string& text);

// `text` cut to at most `max_bytes` (plus the marker " [... N bytes cut]"), never inside a character.
void cap_text(std::string& text, std::size_t max_bytes);

// repair_utf8, then every occurrence of `secret` redacted (scrub_secret); returns how many invalid
// sequences became U+FFFD.
std::size_t clean_wire_text(std::string& text, std::string_view secret);

}  // namespace cbm
