// FNV-1a, 64 bit: a fast, stable (across runs and machines) hash for fingerprints, not for security.
#pragma once

#include <cstdint>
#include <string_view>

namespace cbm {

inline constexpr std::uint64_t kFnv1a64Offset = 1469598103934665603ULL;

// The hash of `s`; or, given the hash of what came before it, the hash of both (piece by piece).
constexpr std::uint64_t fnv1a64(std::string_view s, std::uint64_t h = kFnv1a64Offset) {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace cbm
