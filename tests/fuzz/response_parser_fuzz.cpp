// libFuzzer target: the response parsers must never crash, hang or over-allocate on any bytes: the
// chat and web search answers, and the Batch API's objects and output lines (batch_wire.hpp).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "batch_wire.hpp"
#include "response_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)cbm::parse_chat_response(body);
  (void)cbm::parse_chat_stream(body);
  (void)cbm::parse_web_search_response(body);
  (void)cbm::parse_error_body(body);
  (void)cbm::parse_batch_object(body);
  (void)cbm::parse_file_object(body);
  (void)cbm::parse_batch_list(body);
  (void)cbm::parse_file_list(body);
  // A line it accepts names its request and carries a body (what the batch transport relies on).
  if (const auto line = cbm::parse_batch_output_line(body); line.ok()) {
    if (line->custom_id.empty() || line->body.empty()) __builtin_trap();
  }
  return 0;
}
