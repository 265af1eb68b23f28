// parse_bounded: JSON from outside (a request to the service, an answer from a server) parsed into a
// document only when its shape is within bounds, so a small hostile text cannot cost a deep stack or
// a memory many times its size. The check is a first, allocation-free pass (RapidJSON's SAX reader,
// iterative: no recursion whatever the nesting); the document is then parsed iteratively too.
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace cbm {

struct JsonBounds {
  std::size_t max_depth = 32;        // arrays and objects open at once
  std::size_t max_values = 100000;   // values of any kind (each member's value, each element)
};

// The bound `text` passes ("nested deeper than 32 levels", "more than 100000 values"), found by the
// allocation-free pass alone; nullopt when it passes none (it may still not be valid JSON).
std::optional<std::string> json_shape_problem(std::string_view text, JsonBounds bounds);

// nullopt when `doc` now holds `text`; otherwise why not, naming the bound passed or the syntax error
// and its byte offset ("nested deeper than 32 levels", "more than 100000 values", "invalid JSON at
// byte 12: Missing a comma...").
std::optional<std::string> parse_bounded(rapidjson::Document& doc, std::string_view text, JsonBounds bounds);

}  // namespace cbm
