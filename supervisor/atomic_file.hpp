// Writes a whole file so that a reader sees the old content or the new, never a part: write a
// temporary beside it, fsync, rename over, fsync the directory.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace cbm {

// Returns "" on success, else what failed (the temporary is removed).
std::string write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace cbm
