#include "secret_scrubber.hpp"

namespace cbm {

std::string scrub_secret(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  constexpr std::string_view kRedacted = "[redacted]";
  // The search resumes after the replacement: a secret found inside "[redacted]" itself would loop.
  for (auto pos = text.find(secret); pos != std::string::npos;
       pos = text.find(secret, pos + kRedacted.size())) {
    text.replace(pos, secret.size(), kRedacted);
  }
  return text;
}

}  // namespace cbm
