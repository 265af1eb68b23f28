#include "multipart.h"

#include <boost/beast/core/string.hpp>
#include <cctype>

namespace simulator {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The value of `name=value` or `name="value"` among the `;`-separated parameters of a header value.
// Quoted values may hold `;` and backslash escapes.
std::optional<std::string> header_parameter(std::string_view value, std::string_view name) {
  std::size_t i = value.find(';');
  while (i != std::string_view::npos && i < value.size()) {
    ++i;  // past ';'
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    const std::size_t eq = value.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = trim(value.substr(i, eq - i));
    std::size_t j = eq + 1;
    while (j < value.size() && (value[j] == ' ' || value[j] == '\t')) ++j;
    std::string parsed;
    if (j < value.size() && value[j] == '"') {
      ++j;
      bool closed = false;
      for (; j < value.size(); ++j) {
        if (value[j] == '\\' && j + 1 < value.size()) {
          parsed.push_back(value[++j]);
        } else if (value[j] == '"') {
          closed = true;
          ++j;
          break;
        } else {
          parsed.push_back(value[j]);
        }
      }
      if (!closed) return std::nullopt;
      i = value.find(';', j);
    } else {
      const std::size_t end = value.find(';', j);
      parsed = std::string(trim(value.substr(j, end == std::string_view::npos ? value.size() - j : end - j)));
      i = end;
    }
    if (boost::beast::iequals(key, name)) return parsed;
  }
  return std::nullopt;
}

}  // namespace

std::variant<std::string, std::string> multipart_boundary(std::string_view content_type,
                                                          const MultipartLimits& limits) {
  using Result = std::variant<std::string, std::string>;
  const std::string_view type = trim(content_type.substr(0, content_type.find(';')));
  if (!boost::beast::iequals(type, "multipart/form-data")) {
    return Result(std::in_place_index<1>, "Content-Type must be multipart/form-data");
  }
  auto boundary = header_parameter(content_type, "boundary");
  if (!boundary || boundary->empty()) {
    return Result(std::in_place_index<1>, "multipart/form-data without a boundary");
  }
  if (boundary->size() > limits.max_boundary) {
    return Result(std::in_place_index<1>, "multipart boundary too long");
  }
  return Result(std::in_place_index<0>, std::move(*boundary));
}

std::variant<std::vector<FormPart>, std::string> parse_multipart(std::string_view body,
                                                                 std::string_view boundary,
                                                                 const MultipartLimits& limits) {
  using Result = std::variant<std::vector<FormPart>, std::string>;
  const auto fail = [](std::string message) { return Result(std::in_place_index<1>, std::move(message)); };
  if (boundary.empty()) return fail("empty multipart boundary");
  std::string delimiter = "--";
  delimiter.append(boundary);

  // The first delimiter: at the start, or after a preamble ending in CRLF.
  std::size_t at = 0;
  if (!body.starts_with(delimiter)) {
    std::string first = "\r\n";
    first.append(delimiter);
    at = body.find(first);
    if (at == std::string_view::npos) return fail("multipart body without its opening boundary");
    at += 2;
  }
  std::string next_delimiter = "\r\n";
  next_delimiter.append(delimiter);

  std::vector<FormPart> parts;
  for (;;) {
    at += delimiter.size();
    if (body.substr(at).starts_with("--")) break;  // the close delimiter
    // Transport padding, then CRLF.
    while (at < body.size() && (body[at] == ' ' || body[at] == '\t')) ++at;
    if (!body.substr(at).starts_with("\r\n")) return fail("multipart boundary not followed by CRLF");
    at += 2;
    if (parts.size() == limits.max_parts) return fail("too many multipart parts");

    const std::size_t headers_end = body.find("\r\n\r\n", at > 0 ? at - 2 : 0);
    if (headers_end == std::string_view::npos || headers_end + 2 < at) {
      return fail("multipart part without a blank line after its headers");
    }
    if (headers_end + 2 - at > limits.max_part_header_bytes) return fail("multipart part headers too large");
    const std::string_view headers = body.substr(at, headers_end + 2 - at);  // may be empty
    const std::size_t content_begin = headers_end + 4;
    const std::size_t content_end = body.find(next_delimiter, content_begin > 2 ? content_begin - 2 : 0);
    if (content_end == std::string_view::npos || content_end + 2 < content_begin) {
      return fail("multipart body without its closing boundary");
    }

    FormPart part;
    bool named = false;
    std::size_t line_begin = 0;
    while (line_begin < headers.size()) {
      std::size_t line_end = headers.find("\r\n", line_begin);
      if (line_end == std::string_view::npos) line_end = headers.size();
      const std::string_view line = headers.substr(line_begin, line_end - line_begin);
      line_begin = line_end + 2;
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) return fail("malformed multipart part header");
      if (!boost::beast::iequals(trim(line.substr(0, colon)), "content-disposition")) continue;
      const std::string_view value = line.substr(colon + 1);
      if (!boost::beast::iequals(trim(value.substr(0, value.find(';'))), "form-data")) {
        return fail("multipart part is not form-data");
      }
      if (auto name = header_parameter(value, "name")) {
        part.name = std::move(*name);
        named = true;
      }
      part.filename = header_parameter(value, "filename");
    }
    if (!named) return fail("multipart part without a form-data name");
    part.content = content_begin <= content_end ? body.substr(content_begin, content_end - content_begin)
                                                : std::string_view{};
    parts.push_back(std::move(part));
    at = content_end + 2;
  }
  if (parts.empty()) return fail("multipart body without parts");
  return Result(std::in_place_index<0>, std::move(parts));
}

}  // namespace simulator
