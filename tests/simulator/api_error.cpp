#include "api_error.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace simulator {

std::string ApiError::body() const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("error");
  writer.StartObject();
  writer.Key("code");
  writer.String(code.data(), static_cast<rapidjson::SizeType>(code.size()));
  writer.Key("message");
  writer.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  writer.EndObject();
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

namespace api_errors {

ApiError missing_authorization() {
  return {401, "1000", "身份验证失败：请求头中缺少 Authorization: Bearer <API Key>。"};
}
ApiError invalid_token() {
  return {401, "1001", "令牌无效，请确认 API Key 是否正确。"};
}
ApiError malformed_json() {
  return {400, "1210", "API 调用参数有误，请检查文档。请求体不是合法的 JSON。"};
}
ApiError body_too_large() {
  return {413, "1210", "API 调用参数有误，请检查文档。请求体过大。"};
}

ApiError invalid_field(std::string_view field, std::string_view expectation) {
  std::string message = "参数 ";
  message.append(field).append(" 非法：").append(expectation);
  return {400, "1214", std::move(message)};
}

ApiError unknown_model() {
  return {400, "1211", "模型不存在，请检查模型代码。"};
}
ApiError too_many_in_flight() {
  return {429, "1302", "您当前使用该API的并发数过高，请降低并发，或联系客服增加限额。"};
}
ApiError no_balance() {
  return {429, "1113", "余额不足或无可用资源包,请充值。"};
}
ApiError overloaded() {
  return {429, "1305", "该模型当前访问量过大，请您稍后再试。"};
}
ApiError unsafe_content() {
  return {
      400, "1301",
      "系统检测到输入或生成内容可能包含不安全或敏感内容，请您避免输入易产生敏感内容的提示语，感谢您的配合。"};
}
ApiError prompt_too_long() {
  return {400, "1261", "Prompt 超长。"};
}
ApiError network_error() {
  return {500, "1234", "网络错误"};
}
ApiError not_found(std::string_view path) {
  return {404, "404", "Not Found: " + std::string(path)};
}
ApiError method_not_allowed(std::string_view allowed) {
  return {405, "405", "Method Not Allowed: use " + std::string(allowed)};
}
ApiError malformed_http() {
  return {400, "400", "Bad Request: malformed HTTP"};
}
ApiError headers_too_large() {
  return {431, "431", "Request Header Fields Too Large"};
}
ApiError peer_not_found() {
  return {500, "500", "kill_client: no local process owns the peer socket"};
}

}  // namespace api_errors
}  // namespace simulator
