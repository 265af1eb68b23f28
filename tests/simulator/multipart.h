#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace simulator {

// One part of a multipart/form-data body. Views point into the parsed body.
struct FormPart {
  std::string name;                     // Content-Disposition's name
  std::optional<std::string> filename;  // Content-Disposition's filename, when the part is a file
  std::string_view content;
};

// Limits that keep a hostile body from costing more than its own size.
struct MultipartLimits {
  std::size_t max_parts = 16;
  std::size_t max_part_header_bytes = 8 * 1024;  // the header block of one part
  std::size_t max_boundary = 200;                // RFC 2046 allows at most 70; some clients exceed it
};

// The boundary of a `multipart/form-data; boundary=...` Content-Type (quoted or not); an error message
// when the type is another or the boundary is missing, empty or too long.
std::variant<std::string, std::string> multipart_boundary(std::string_view content_type,
                                                          const MultipartLimits& limits = {});

// Splits `body` into its parts (RFC 7578). Returns the parts, or a message saying what is wrong
// (no opening boundary, a part without a blank line after its headers, no closing boundary, too many
// parts, a part without a form-data name). Linear in the body's size.
std::variant<std::vector<FormPart>, std::string> parse_multipart(std::string_view body,
                                                                 std::string_view boundary,
                                                                 const MultipartLimits& limits = {});

}  // namespace simulator
