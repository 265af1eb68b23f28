#include "wire_text.hpp"

#include <cstdint>

#include "secret_scrubber.hpp"

namespace cbm {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the valid UTF-8 character at `s[i]`, or 0 when none starts there.
std::size_t valid_char_at(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

// The length of the longest valid UTF-8 prefix of `text`.
std::size_t valid_prefix(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t len = valid_char_at(text, i);
    if (len == 0) break;
    i += len;
  }
  return i;
}

}  // namespace

bool is_valid_utf8(std::string_view text) { return valid_prefix(text) == text.size(); }

std::size_t repair_utf8(std::string& text) {
  std::size_t i = valid_prefix(text);
  if (i == text.size()) return 0;  // the common case: valid, untouched
  std::string out(text, 0, i);
  std::size_t replaced = 0;
  while (i < text.size()) {
    if (const std::size_t len = valid_char_at(text, i); len > 0) {
      out.append(text, i, len);
      i += len;
      continue;
    }
    // One replacement for a run of bytes that start no character.
    ++replaced;
    out += kReplacement;
    ++i;
    while (i < text.size() && valid_char_at(text, i) == 0) ++i;
  }
  text = std::move(out);
  return replaced;
}

void cap_text(std::string& text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return;
  std::size_t cut = max_bytes;
  // Back off continuation bytes: the cut falls before a character, never inside one.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  const std::size_t dropped = text.size() - cut;
  text.resize(cut);
  text += " [... ";
  text += std::to_string(dropped);
  text += " bytes cut]";
}

std::size_t clean_wire_text(std::string& text, std::string_view secret) {
  const std::size_t replaced = repair_utf8(text);
  if (!secret.empty()) text = scrub_secret(std::move(text), secret);
  return replaced;
}

}  // namespace cbm
