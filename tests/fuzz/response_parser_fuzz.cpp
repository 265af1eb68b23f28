// libFuzzer target: the response parsers must never crash, hang or over-allocate on any bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "response_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)cbm::parse_chat_response(body);
  (void)cbm::parse_chat_stream(body);
  (void)cbm::parse_web_search_response(body);
  (void)cbm::parse_error_body(body);
  return 0;
}
