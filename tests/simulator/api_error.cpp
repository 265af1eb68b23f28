#include "api_error.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <charconv>
#include <ctime>

namespace simulator {

namespace {

std::string error_body(const ApiError& error, bool integer_code) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("error");
  writer.StartObject();
  writer.Key("code");
  std::int64_t number = 0;
  const auto [end, ec] = std::from_chars(error.code.data(), error.code.data() + error.code.size(), number);
  if (integer_code && ec == std::errc{} && end == error.code.data() + error.code.size()) {
    writer.Int64(number);
  } else {
    writer.String(error.code.data(), static_cast<rapidjson::SizeType>(error.code.size()));
  }
  const std::string& message = error.message;
  writer.Key("message");
  writer.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  writer.EndObject();
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

struct CodeRow {
  std::uint32_t code;
  unsigned status;
  std::string_view text;  // the platform's message
};

// HTTP statuses from the platform's documentation where it gives one, else from captured answers or
// the family's (429 for account and quota limits).
constexpr std::array<CodeRow, 39> kCodes{{
    {500, 500, "服务器内部错误"},
    {1000, 401, "身份验证失败"},
    {1001, 401, "Header中未收到Authentication参数，无法进行身份验证"},
    {1002, 401, "Authorization Token非法，请确认Authorization Token正确传递"},
    {1003, 401, "Authorization Token过期，请重新生成/获取"},
    {1004, 401, "Authorization Token验证失败"},
    {1100, 500, "账户读写错误，请稍后再试"},
    {1110, 429, "您的账户当前处于非活动状态。请检查账户信息"},
    {1111, 429, "您的账户不存在"},
    {1112, 429, "您的账户已被锁定，请联系客服解锁"},
    {1113, 429, "您的账户已欠费，请充值后重试"},
    {1120, 500, "无法成功访问您的账户，请稍后再试"},
    {1121, 429, "您的账户因违规已被锁定，请联系客服解锁"},
    {1200, 400, "API 调用错误"},
    {1210, 400, "API 调用参数有误，请检查文档"},
    {1211, 400, "模型不存在，请检查模型代码"},
    {1212, 400, "当前模型不支持该调用方式"},
    {1213, 400, "未正常接收到 prompt 参数"},
    {1214, 400, "参数非法，请检查文档"},
    {1215, 400, "参数 do_sample 与 temperature 互斥"},
    {1220, 434, "您无权访问该 API"},
    {1221, 435, "该 API 已下线"},
    {1222, 404, "该 API 不存在"},
    {1230, 500, "API 调用流程出错"},
    {1231, 400, "您已有请求：sim-duplicate"},
    {1234, 500, "网络错误，错误id：sim-1234，请联系客服"},
    {1261, 400, "Prompt 超长"},
    {1300, 400, "API 调用被策略阻止"},
    {1301, 400, "系统检测到输入或生成内容可能包含不安全或敏感内容，请您避免输入易产生敏感内容的提示语，感谢您的配合"},
    {1302, 429, "您当前使用该API的并发数过高，请降低并发，或联系客服增加限额"},
    {1303, 429, "您当前使用该API的频率过高，请降低频率，或联系客服增加限额"},
    {1304, 429, "该 API 已达今日调用次数限额"},
    {1305, 429, "该模型当前访问量过大，请您稍后再试"},
    {1308, 429, "Usage limit reached for 5 hour. Your limit will reset at "},
    {1309, 429, "您的 GLM Coding Plan 套餐已到期"},
    {1310, 429, "Weekly/Monthly Limit Exhausted. Your limit will reset at "},
    {1311, 429, "当前订阅套餐暂未开放 glm-5.3 权限"},
    {1312, 429, "该模型当前访问量过大，请切换至 glm-4.5-air 或稍后再试"},
    {1313, 429, "您的账户已触发公平使用限制，请稍后再试"},
}};

// The code as a string with static storage (ApiError::code is a view).
std::string_view code_text(std::uint32_t code) {
  static const auto texts = [] {
    std::array<std::string, kCodes.size()> out;
    for (std::size_t i = 0; i < kCodes.size(); ++i) out[i] = std::to_string(kCodes[i].code);
    return out;
  }();
  for (std::size_t i = 0; i < kCodes.size(); ++i) {
    if (kCodes[i].code == code) return texts[i];
  }
  return {};
}

}  // namespace

std::string ApiError::body() const { return error_body(*this, false); }
std::string ApiError::body_with_integer_code() const { return error_body(*this, true); }

std::optional<ApiError> platform_error(std::uint32_t code) {
  for (const CodeRow& row : kCodes) {
    if (row.code != code) continue;
    if (code == 1308 || code == 1310) return quota_reset(code, std::chrono::system_clock::now() + std::chrono::minutes(1));
    return ApiError{row.status, code_text(code), std::string(row.text)};
  }
  return std::nullopt;
}

ApiError quota_reset(std::uint32_t code, std::chrono::system_clock::time_point reset) {
  const std::time_t china = std::chrono::system_clock::to_time_t(reset) + 8 * 3600;
  std::tm t{};
  ::gmtime_r(&china, &t);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &t);
  std::string message;
  for (const CodeRow& row : kCodes) {
    if (row.code == code) message = row.text;
  }
  message += when;
  return ApiError{429, code_text(code), std::move(message)};
}

std::string unrecognized_argument_body(std::string_view field) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("error");
  writer.StartObject();
  writer.Key("message");
  std::string message = "Unrecognized request argument supplied: ";
  message.append(field);
  writer.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  writer.Key("type");
  writer.String("invalid_request_error");
  writer.Key("param");
  writer.Null();
  writer.Key("code");
  writer.Null();
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
