#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace simulator {

// An error as the platform reports it: an HTTP status and `{"error":{"code":"...","message":"..."}}`.
// The code is a string on the wire, as on the real platform.
struct ApiError {
  unsigned status;
  std::string_view code;
  std::string message;

  std::string body() const;
  // The same with the code as a JSON integer (as the z.ai spec writes it).
  std::string body_with_integer_code() const;
};

// Every code of the platform's error table (docs/protocol.md, "Errors") with the HTTP status it comes
// with and the platform's message; nullopt for a code the table does not have. 1308 and 1310 name a
// reset time a minute ahead (quota_reset names one of your choosing).
std::optional<ApiError> platform_error(std::uint32_t code);

// A usage cap (code 1308 or 1310) that resets at `reset`, written as the platform writes it: to the
// second, in UTC+8, no zone named ("Your limit will reset at 2026-05-25 19:22:49").
ApiError quota_reset(std::uint32_t code, std::chrono::system_clock::time_point reset);

// api.openai.com's answer to a field it does not know: HTTP 400,
// {"error":{"message":"Unrecognized request argument supplied: FIELD","type":"invalid_request_error",
// "param":null,"code":null}}.
std::string unrecognized_argument_body(std::string_view field);

// The errors the simulator answers with, named for their meaning. Codes follow docs/protocol.md, "Errors".
namespace api_errors {

ApiError missing_authorization();  // 401 "1000": no `Authorization: Bearer` header
ApiError invalid_token();          // 401 "1001": wrong or empty token
ApiError malformed_json();         // 400 "1210"
ApiError body_too_large();         // 413 "1210"
ApiError invalid_field(std::string_view field, std::string_view expectation);  // 400 "1214"
ApiError unknown_model();                                                      // 400 "1211"
ApiError too_many_in_flight();                                                 // 429 "1302"
ApiError no_balance();                                                         // 429 "1113"
ApiError overloaded();                                                         // 429 "1305"
ApiError unsafe_content();                                                     // 400 "1301"
ApiError prompt_too_long();                                                    // 400 "1261"
ApiError network_error();                                                      // 500 "1234"
ApiError not_found(std::string_view path);                                     // 404 "404"
ApiError method_not_allowed(std::string_view allowed);                         // 405 "405"
ApiError malformed_http();     // 400 "400": unparseable request line or headers
ApiError headers_too_large();  // 431 "431"
ApiError peer_not_found();     // 500 "500": kill_client found no process to kill

}  // namespace api_errors
}  // namespace simulator
