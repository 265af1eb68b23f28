// FNV-1a, 64 bit: a fast, stable (across runs and machines) hash for fingerprints, not for security.
#pragma once

#include <cstdint>
#include <string_view>

namespace cbm {

constexpr std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace cbm
